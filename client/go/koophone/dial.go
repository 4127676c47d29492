package koophone

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/koophone-gateway/koophone-gateway/client/go/koophonev1"
)

// Config says how to reach a gateway. The zero value dials in plaintext without credentials, which the gateway
// accepts only on loopback (as `make run` starts it).
type Config struct {
	// TLS turns on TLS, verified against the system's roots unless CAFile or TLSConfig says otherwise. Setting
	// CAFile, CertFile or TLSConfig implies it.
	TLS bool
	// CAFile is a PEM file of the CAs that may sign the gateway's certificate.
	CAFile string
	// CertFile and KeyFile are the client's certificate and key, for a gateway that authenticates callers by mTLS.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the gateway's certificate (default: the target's host).
	ServerName string
	// TLSConfig, when set, is used as the base instead of an empty one (CAFile, CertFile and ServerName still apply).
	TLSConfig *tls.Config

	// APIKey is sent on every call as `authorization: Bearer <key>`. It is never sent in plaintext, except to a
	// loopback address or when AllowInsecureAPIKey says so.
	APIKey string
	// AllowInsecureAPIKey lets the key travel without TLS to a non-loopback address (a test network, a sidecar).
	AllowInsecureAPIKey bool

	// NoRetry leaves out the built-in retry policy (ServiceConfig).
	NoRetry bool
}

// DialOptions returns the grpc options Config describes: transport credentials, the API key and the retry policy.
func (c Config) DialOptions(target string) ([]grpc.DialOption, error) {
	var opts []grpc.DialOption
	useTLS := c.TLS || c.CAFile != "" || c.CertFile != "" || c.TLSConfig != nil
	if useTLS {
		cfg, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	} else {
		if c.CertFile != "" || c.KeyFile != "" {
			return nil, errors.New("koophone: a client certificate needs TLS")
		}
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if c.APIKey != "" {
		plaintext := !useTLS
		if plaintext && !c.AllowInsecureAPIKey && !IsLoopback(target) {
			return nil, fmt.Errorf("koophone: refusing to send the API key in plaintext to %q: use TLS, or set AllowInsecureAPIKey", target)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(apiKey{key: c.APIKey, allowPlaintext: plaintext}))
	}
	if !c.NoRetry {
		opts = append(opts, grpc.WithDefaultServiceConfig(ServiceConfig()))
	}
	return opts, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSConfig != nil {
		cfg = c.TLSConfig.Clone()
	}
	if c.ServerName != "" {
		cfg.ServerName = c.ServerName
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("koophone: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("koophone: CA file %s: no PEM certificate in it", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return nil, errors.New("koophone: a client certificate needs both CertFile and KeyFile")
	}
	if c.CertFile != "" {
		// Read on every handshake, so a renewed certificate is used without a restart.
		certFile, keyFile := c.CertFile, c.KeyFile
		if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			return nil, fmt.Errorf("koophone: client certificate: %w", err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			return &cert, err
		}
	}
	return cfg, nil
}

// Dial opens a connection to the gateway at target ("host:port", or any grpc target) as Config says; more options
// come after Config's.
func Dial(target string, c Config, more ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts, err := c.DialOptions(target)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(target, append(opts, more...)...)
}

// Client bundles a connection with a stub for each service of the contract.
type Client struct {
	Conn      *grpc.ClientConn
	Instances pb.InstanceServiceClient
	Orders    pb.OrderServiceClient
	Apps      pb.AppServiceClient
	Fleet     pb.FleetServiceClient
}

// New dials target and returns the four stubs on the one connection. Close it when done.
func New(target string, c Config, more ...grpc.DialOption) (*Client, error) {
	conn, err := Dial(target, c, more...)
	if err != nil {
		return nil, err
	}
	return &Client{
		Conn:      conn,
		Instances: pb.NewInstanceServiceClient(conn),
		Orders:    pb.NewOrderServiceClient(conn),
		Apps:      pb.NewAppServiceClient(conn),
		Fleet:     pb.NewFleetServiceClient(conn),
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.Conn.Close() }

// IsLoopback reports whether a grpc target names this machine only: localhost, 127.0.0.0/8, ::1, or a unix socket.
func IsLoopback(target string) bool {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "unix-abstract:") {
		return true
	}
	for _, scheme := range []string{"dns:///", "passthrough:///", "dns:", "passthrough:"} {
		if strings.HasPrefix(target, scheme) {
			target = strings.TrimPrefix(target, scheme)
			break
		}
	}
	host := target
	if h, _, err := net.SplitHostPort(target); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// apiKey is the per-call credential: `authorization: Bearer <key>`.
type apiKey struct {
	key            string
	allowPlaintext bool
}

func (k apiKey) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if !k.allowPlaintext {
		// A second check behind DialOptions': never hand the key to a connection that is not private.
		ri, _ := credentials.RequestInfoFromContext(ctx)
		if err := credentials.CheckSecurityLevel(ri.AuthInfo, credentials.PrivacyAndIntegrity); err != nil {
			return nil, fmt.Errorf("koophone: not sending the API key: %w", err)
		}
	}
	return map[string]string{"authorization": "Bearer " + k.key}, nil
}

func (k apiKey) RequireTransportSecurity() bool { return !k.allowPlaintext }
