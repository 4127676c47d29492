package upstream

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// NewTransport returns the transport the client uses unless it is given an *http.Client. One transport is meant to
// be shared by every call: the gateway fans hundreds of concurrent calls out to one KooPhone host, so idle
// connections per host are kept far above net/http's default of 2 (which would churn TCP+TLS handshakes).
func NewTransport() *http.Transport {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		MaxConnsPerHost:       DefaultMaxConnsPerHost, // beyond it requests queue: 1,000 callers must not open 1,000 connections
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
}

// httpClient returns a copy of hc (or a new client on NewTransport) that never follows redirects: net/http keeps
// custom headers such as X-Auth-Token on a redirect to another host, which would hand our token to whoever
// answers with a 3xx. A redirect is returned as the response, and so becomes a KindHTTP error.
//
// The default transport holds at most maxConns connections to KooPhone (more requests queue for one inside
// their deadline), and with traced it is wrapped by otelhttp so that each attempt is a span of the caller's trace.
func httpClient(hc *http.Client, maxConns int, traced bool) *http.Client {
	var c http.Client
	if hc != nil {
		c = *hc
	} else {
		t := NewTransport()
		t.MaxConnsPerHost = maxConns
		c.Transport = t
		if traced {
			c.Transport = otelhttp.NewTransport(t, otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
				return "koophone " + r.Method
			}))
		}
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// isDialError reports whether err happened while opening a connection (DNS, TCP connect, proxy connect, TLS
// handshake), i.e. before any byte of the request could be written.
func isDialError(err error) bool {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}
