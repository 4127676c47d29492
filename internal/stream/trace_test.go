package stream

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// With a tracer, each poll is a root span linked to the watches it serves (the first MaxPollLinks of them, with
// how many watched), and the poll's own calls run in it. A watcher that leaves is no longer linked.
func TestPollSpansLinkTheWatches(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	h, clk := newHub(t, Config{Tracer: tp})
	src := newSource(val{N: 1})
	var pollSpans []trace.SpanContext
	s := src.source()
	poll := s.Poll
	s.Poll = func(ctx context.Context) (val, error) {
		pollSpans = append(pollSpans, trace.SpanContextFromContext(ctx)) // the poller's goroutine only
		return poll(ctx)
	}

	var watches []trace.SpanContext
	var subs []Subscription[val]
	join := func(traced bool) {
		ctx := context.Background()
		if traced {
			var span trace.Span
			ctx, span = tp.Tracer("test").Start(ctx, "watch")
			watches = append(watches, span.SpanContext())
			span.End()
		}
		sub, err := h.Watch(ctx, testKey, s)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sub.Close)
		subs = append(subs, sub)
		next(t, sub)
	}
	join(true)
	wait := clk.nextWait(t) // the first poll is done: it served the first watch
	for range MaxPollLinks + 2 {
		join(true)
	}
	join(false) // a caller without a trace is counted, not linked
	src.set(val{N: 2}, nil)
	clk.Advance(wait)
	wait = clk.nextWait(t)
	subs[1].Close()
	clk.Advance(wait)
	clk.nextWait(t)

	var polls []sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		if sp.Name() == "watch poll task" {
			polls = append(polls, sp)
		}
	}
	if len(polls) != 3 || len(pollSpans) != 3 {
		t.Fatalf("%d poll spans, %d polls", len(polls), len(pollSpans))
	}
	for i, want := range []struct {
		links          []trace.SpanContext
		watchers, link int64
	}{
		{watches[:1], 1, 1},
		{watches[:MaxPollLinks], MaxPollLinks + 4, MaxPollLinks},
		{append([]trace.SpanContext{watches[0]}, watches[2:MaxPollLinks]...), MaxPollLinks + 3, MaxPollLinks - 1},
	} {
		p := polls[i]
		if p.Parent().IsValid() || !p.SpanContext().Equal(pollSpans[i]) {
			t.Errorf("poll %d: parent %v; the poll ran in %v, not in its span %v", i, p.Parent(), pollSpans[i], p.SpanContext())
		}
		var got []trace.SpanContext
		for _, l := range p.Links() {
			got = append(got, l.SpanContext)
		}
		if len(got) != len(want.links) {
			t.Fatalf("poll %d: %d links, want %d", i, len(got), len(want.links))
		}
		for j := range got {
			if !got[j].Equal(want.links[j]) {
				t.Errorf("poll %d link %d: %v, want %v", i, j, got[j].SpanID(), want.links[j].SpanID())
			}
		}
		attrs := map[attribute.Key]int64{}
		for _, a := range p.Attributes() {
			attrs[a.Key] = a.Value.AsInt64()
		}
		if attrs["koophone.watch.watchers"] != want.watchers || attrs["koophone.watch.linked"] != want.link {
			t.Errorf("poll %d: attributes %v", i, attrs)
		}
	}
}

// Without a tracer the poll runs in the poller's own context: no span at all.
func TestNoPollSpanWithoutTracer(t *testing.T) {
	h, _ := newHub(t, Config{})
	var span trace.SpanContext
	src := newSource(val{N: 1, Done: true})
	s := src.source()
	poll := s.Poll
	s.Poll = func(ctx context.Context) (val, error) {
		span = trace.SpanContextFromContext(ctx)
		return poll(ctx)
	}
	sub, err := h.Watch(context.Background(), testKey, s)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	next(t, sub)
	if span.IsValid() {
		t.Fatalf("a span without a tracer: %v", span)
	}
}
