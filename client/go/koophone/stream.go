package koophone

import (
	"errors"
	"io"
)

// Receiver is a server stream: every stub's streaming client (grpc.ServerStreamingClient[M]) is one.
type Receiver[M any] interface {
	Recv() (*M, error)
}

// Follow receives every message of a stream until it ends and calls fn with each. It returns nil when the stream
// ended with OK, the stream's final status as an error otherwise (read it with ErrorOf or status.FromError), or
// fn's error, which stops following (cancel the call's context then, to end the stream on the server too).
func Follow[M any](stream Receiver[M], fn func(*M) error) error {
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(msg); err != nil {
			return err
		}
	}
}

// Last follows a stream to its end and returns its last message (nil when it sent none) and its final status.
func Last[M any](stream Receiver[M]) (*M, error) {
	var last *M
	err := Follow(stream, func(m *M) error { last = m; return nil })
	return last, err
}
