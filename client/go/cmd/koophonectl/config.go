package main

import (
	"encoding/json"

	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/koophone-gateway/koophone-gateway/client/go/koophone"
)

// globalFlags are the connection and output settings every subcommand takes.
type globalFlags struct {
	configFile          string
	addr                string
	apiKeyFile          string
	tls                 bool
	caFile              string
	certFile, keyFile   string
	serverName          string
	allowInsecureAPIKey bool
	timeout             time.Duration
	output              string
	progress            string
	columns             string
	quiet               bool
}

// fileConfig is the config file: JSON, every key optional. The API key may be in it (keep the file private) or
// named by api_key_file.
type fileConfig struct {
	Addr                string `json:"addr"`
	APIKey              string `json:"api_key"`
	APIKeyFile          string `json:"api_key_file"`
	TLS                 bool   `json:"tls"`
	CAFile              string `json:"ca_file"`
	CertFile            string `json:"cert_file"`
	KeyFile             string `json:"key_file"`
	ServerName          string `json:"server_name"`
	AllowInsecureAPIKey bool   `json:"allow_insecure_api_key"`
}

const defaultAddr = "127.0.0.1:9090"

func (g *globalFlags) register(root *cobra.Command) {
	f := root.PersistentFlags()
	f.StringVar(&g.configFile, "config", "", "config file (JSON; default $KOOPHONE_CONFIG or ~/.config/koophonectl/config.json)")
	f.StringVar(&g.addr, "addr", "", "gateway gRPC address (env KOOPHONE_ADDR; default "+defaultAddr+")")
	// No --api-key: a key on the command line ends up in shell history and process lists.
	f.StringVar(&g.apiKeyFile, "api-key-file", "", "file holding the API key (env KOOPHONE_API_KEY or KOOPHONE_API_KEY_FILE)")
	f.BoolVar(&g.tls, "tls", false, "use TLS with the system's roots (env KOOPHONE_TLS=true)")
	f.StringVar(&g.caFile, "ca-file", "", "CA certificates (PEM) for the gateway's certificate; implies --tls (env KOOPHONE_CA_FILE)")
	f.StringVar(&g.certFile, "cert-file", "", "client certificate (PEM) for mTLS; implies --tls (env KOOPHONE_CLIENT_CERT_FILE)")
	f.StringVar(&g.keyFile, "key-file", "", "client certificate's key (PEM) (env KOOPHONE_CLIENT_KEY_FILE)")
	f.StringVar(&g.serverName, "server-name", "", "name to verify in the gateway's certificate (env KOOPHONE_SERVER_NAME)")
	f.BoolVar(&g.allowInsecureAPIKey, "allow-insecure-api-key", false, "send the API key without TLS to a non-loopback address")
	f.DurationVar(&g.timeout, "timeout", 0, "deadline for the call (default: none for streams, 30s for others)")
	f.StringVarP(&g.output, "output", "o", "table", "output: table or json (one JSON object per line for streams)")
	f.StringVar(&g.progress, "progress", "auto", "progress bar on stderr for streams: auto (when stderr is a terminal), always, never")
	f.StringVar(&g.columns, "columns", "", "table columns (field names, comma-separated), or \"all\" (default: the first 8 that have values)")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "no request_id or progress on stderr")
	_ = root.RegisterFlagCompletionFunc("output", fixedCompletion("table", "json"))
	_ = root.RegisterFlagCompletionFunc("progress", fixedCompletion("auto", "always", "never"))
}

func fixedCompletion(values ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}

// connection resolves the address and credentials: flag, then environment, then config file, then default.
func (a *app) connection(cmd *cobra.Command) (string, koophone.Config, error) {
	g := &a.global
	var fc fileConfig
	path := first(g.configFile, a.getenv("KOOPHONE_CONFIG"))
	explicit := path != ""
	if path == "" {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, ".config", "koophonectl", "config.json")
		}
	}
	if path != "" {
		raw, err := os.ReadFile(path) //nolint:gosec // G304: the config file the user names; reading it is the point
		switch {
		case err == nil:
			dec := json.NewDecoder(strings.NewReader(string(raw)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&fc); err != nil && err != io.EOF {
				return "", koophone.Config{}, usagef("config file %s: %v", path, err)
			}
		case explicit || !os.IsNotExist(err):
			return "", koophone.Config{}, usagef("config file: %v", err)
		}
	}
	changed := func(name string) bool { return cmd.Flags().Changed(name) }
	envBool := func(name string) (bool, error) {
		v := a.getenv(name)
		if v == "" {
			return false, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, usagef("%s=%q: want true or false", name, v)
		}
		return b, nil
	}
	tlsEnv, err := envBool("KOOPHONE_TLS")
	if err != nil {
		return "", koophone.Config{}, err
	}
	cfg := koophone.Config{
		TLS:                 g.tls || tlsEnv || fc.TLS,
		CAFile:              first(g.caFile, a.getenv("KOOPHONE_CA_FILE"), fc.CAFile),
		CertFile:            first(g.certFile, a.getenv("KOOPHONE_CLIENT_CERT_FILE"), fc.CertFile),
		KeyFile:             first(g.keyFile, a.getenv("KOOPHONE_CLIENT_KEY_FILE"), fc.KeyFile),
		ServerName:          first(g.serverName, a.getenv("KOOPHONE_SERVER_NAME"), fc.ServerName),
		AllowInsecureAPIKey: g.allowInsecureAPIKey || fc.AllowInsecureAPIKey,
	}
	if changed("tls") {
		cfg.TLS = g.tls
	}
	keyFile := first(g.apiKeyFile, a.getenv("KOOPHONE_API_KEY_FILE"), fc.APIKeyFile)
	switch {
	case g.apiKeyFile != "":
	case a.getenv("KOOPHONE_API_KEY") != "":
		cfg.APIKey, keyFile = a.getenv("KOOPHONE_API_KEY"), ""
	case keyFile == "" && fc.APIKey != "":
		cfg.APIKey = fc.APIKey
	}
	if keyFile != "" {
		raw, err := os.ReadFile(keyFile) //nolint:gosec // G304: the key file the user names; reading it is the point
		if err != nil {
			return "", koophone.Config{}, usagef("API key file: %v", err)
		}
		cfg.APIKey = strings.TrimSpace(string(raw))
		if cfg.APIKey == "" {
			return "", koophone.Config{}, usagef("API key file %s is empty", keyFile)
		}
	}
	return first(g.addr, a.getenv("KOOPHONE_ADDR"), fc.Addr, defaultAddr), cfg, nil
}

func first(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

func (g *globalFlags) check() error {
	if g.output != "table" && g.output != "json" {
		return usagef("--output %q: want table or json", g.output)
	}
	switch g.progress {
	case "auto", "always", "never":
	default:
		return usagef("--progress %q: want auto, always or never", g.progress)
	}
	return nil
}
