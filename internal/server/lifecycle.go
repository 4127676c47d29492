package server

import (
	"context"
	"errors"
	"fmt"
)

// The lifecycle: every part Start builds pushes its closer onto one stack the moment it exists, and the stack runs
// last-in-first-out, on a failed Start as at Shutdown. So nothing is closed that was not built, nothing is closed
// twice, and each part is closed before whatever it uses. Start builds, in this order:
//
//	telemetry → coordination (Redis) → simulator → KooPhone client → audit log → gRPC server → REST stream
//	connections → REST listener → metrics and pprof listeners → readiness probe → streams
//
// and Shutdown, after health turned NOT_SERVING and the drain delay, unwinds it:
//
//  1. streams: every held stream is told to end (health watches; watch and fleet streams with UNAVAILABLE,
//     reason SERVER_SHUTTING_DOWN, so their callers reconnect elsewhere), so the drains below wait only for
//     calls that end by themselves;
//  2. the readiness probe and the credential-file poller stop (health stays NOT_SERVING whatever they saw);
//  3. the operators' listeners (metrics, pprof) close;
//  4. the REST listener stops taking calls and finishes its in-flight ones: REST unary calls run in process, on
//     the services, so they must end before anything behind the services closes;
//  5. the REST mirror's stream connections close, then gRPC stops gracefully (in-flight calls finish);
//  6. the audit log, the KooPhone client, the simulator, coordination (after the hubs, so pollers released their
//     leases) and telemetry (the last spans flushed) close.
//
// Steps 4 and 5 share the grace period; calls still running when it ends are cut, counted in one WARN line, and
// Shutdown returns an error (the process exits 1).

// closer is one part's way to close.
type closer struct {
	name  string
	close func(ctx context.Context) error
}

// closers is the stack. It is used by Start's goroutine and then by Shutdown's, never both at once.
type closers struct {
	stack []closer
	// ran, when set (tests), is told each closer's name as it starts.
	ran func(name string)
}

// push adds a part's closer; it runs before every closer pushed earlier.
func (c *closers) push(name string, fn func(ctx context.Context) error) {
	c.stack = append(c.stack, closer{name, fn})
}

// unwind runs every closer, newest first, and empties the stack. A failing closer does not stop the others; the
// errors come back joined, each with its part's name.
func (c *closers) unwind(ctx context.Context) error {
	var errs []error
	for len(c.stack) > 0 {
		top := c.stack[len(c.stack)-1]
		c.stack = c.stack[:len(c.stack)-1]
		if c.ran != nil {
			c.ran(top.name)
		}
		if err := top.close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", top.name, err))
		}
	}
	return errors.Join(errs...)
}

// quiet adapts a closer that cannot fail.
func quiet(f func()) func(context.Context) error {
	return func(context.Context) error { f(); return nil }
}

// ignoreCtx adapts an io.Closer-style Close.
func ignoreCtx(f func() error) func(context.Context) error {
	return func(context.Context) error { return f() }
}

// stopGRPC stops taking gRPC calls and lets those in flight finish until ctx ends, then cuts them.
func (s *Server) stopGRPC(ctx context.Context) error {
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.cut()
		s.grpc.Stop()
		<-stopped
	}
	return nil
}

// stopREST closes the HTTP listener and lets the calls in flight finish until ctx ends, then cuts them. REST
// unary calls run on the services in process (no gRPC server holds them), so this is what keeps the services open
// under them.
func (s *Server) stopREST(ctx context.Context) error {
	if err := s.http.Shutdown(ctx); err != nil {
		s.cut()
		_ = s.http.Close()
	}
	return nil
}

// announceStreams pushes the closer that tells every held stream to end: health watches (a load balancer's open
// watch would otherwise hold the gRPC drain for the whole grace period), then the watch and fleet streams, which
// end with UNAVAILABLE (SERVER_SHUTTING_DOWN) so their callers reconnect elsewhere, and the watch hubs' pollers.
// It is the services' closer: pushed last so it runs before the drains, which then wait only for calls that end by
// themselves; before it is pushed nothing has been served, so no stream holds a hub.
func (s *Server) announceStreams(context.Context) error {
	s.closers.push("streams", quiet(func() {
		s.health.stop()
		s.services.Close()
	}))
	return nil
}

// cut reports, once, the calls still in progress when the grace period ended: a WARN line with their count, and
// the error Shutdown returns.
func (s *Server) cut() {
	if s.cutErr != nil {
		return
	}
	if n := s.active.Load(); n > 0 {
		s.log.Warn("shutdown grace period ended: calls cut", "calls", n)
		s.cutErr = fmt.Errorf("%d calls cut at the end of the shutdown grace period", n)
	}
}

// Shutdown stops the server in the order that loses no call: health turns NOT_SERVING (load balancers stop
// sending) and stays so, calls are still taken for the drain delay, then the lifecycle unwinds (above):
// streams are told to end, the REST listener and then gRPC drain their in-flight calls until ctx ends (then cut
// them), and last the services' dependencies close. Calls cut make the error non-nil.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.log.Info("shutting down")
		s.stopping.Store(true)
		s.applyServing()
		s.drain(ctx)
		err := s.closers.unwind(ctx)
		s.wg.Wait()
		s.shutdownErr = errors.Join(s.cutErr, err)
		s.log.Info("stopped")
	})
	return s.shutdownErr
}
