// Package pprofserver serves net/http/pprof for operators on its own port, never on the public ones: profiles show
// goroutine stacks and memory, so the listener must be a loopback address (reach it with an SSH tunnel or
// kubectl port-forward).
package pprofserver

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// Server is a running pprof endpoint.
type Server struct {
	http *http.Server
	lis  net.Listener
	done chan struct{}
}

// Start listens on addr, which must name a loopback host (127.0.0.1, ::1 or localhost), and serves /debug/pprof/
// in the background.
func Start(addr string) (*Server, error) {
	if err := CheckLoopback(addr); err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on --pprof-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	// Registered by hand: importing net/http/pprof for its side effect would also put it on http.DefaultServeMux.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s := &Server{
		// No WriteTimeout: a CPU profile or trace streams for as long as its ?seconds= asks.
		http: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		lis:  lis,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		_ = s.http.Serve(lis) // returns ErrServerClosed on Close
	}()
	return s, nil
}

// Addr is the address the endpoint listens on.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Close stops the endpoint, cutting any profile in progress, and waits for it to stop.
func (s *Server) Close() error {
	err := s.http.Close()
	<-s.done
	return err
}

// CheckLoopback returns an error naming the setting unless addr's host is a loopback address or "localhost".
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--pprof-addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return errors.New("--pprof-addr must be a loopback address such as 127.0.0.1:6060 (profiles expose memory and stacks)")
}
