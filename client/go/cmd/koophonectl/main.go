// Command koophonectl operates KooPhone phones through the gateway: every RPC of the contract is a subcommand
// (derived from the stubs' descriptors, not written per RPC), requests come from flags or a JSON body, answers are
// tables (or JSON with -o json), fleet operations and watches show a progress bar and one line per phone, and the
// exit code says which gRPC status the call ended with.
//
//	koophonectl instance list-instances --page-size 50
//	koophonectl fleet reboot-fleet --all
//	koophonectl instance watch-task --task-id 1a2b3c
//	koophonectl fleet run-fleet-command --ids a1,a2 --command "getprop ro.serialno" -o json
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/koophone-gateway/koophone-gateway/client/go/koophone"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// run is main without the process: the tests call it too.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	app := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := app.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return app.exit
	}
	var u usageError
	if errors.As(err, &u) || !app.called {
		_, _ = fmt.Fprintln(stderr, "koophonectl:", err)
		return exitUsage
	}
	return app.reportError(err)
}

// usageError is a mistake in the command line: exit code 2, like cobra's own.
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "koophonectl",
		Short: "Operate KooPhone phones through the koophone gateway",
		Long: `koophonectl calls the koophone gateway's gRPC API. Every RPC is a subcommand of its service:
  koophonectl instance list-instances --page-size 50
  koophonectl fleet reboot-fleet --all
Request fields are flags (nested fields with dots: --selector.filter.pool-name), or a JSON body with -d (proto field
names; -d @file, -d - for stdin); flags override the body. Writes get a new request_id unless one is given; it is
printed on stderr so the same write can be repeated safely.

The gateway's address and credentials come from flags, then the environment (KOOPHONE_ADDR, KOOPHONE_API_KEY,
KOOPHONE_API_KEY_FILE, KOOPHONE_TLS, KOOPHONE_CA_FILE, KOOPHONE_CLIENT_CERT_FILE, KOOPHONE_CLIENT_KEY_FILE,
KOOPHONE_SERVER_NAME), then a config file (--config, KOOPHONE_CONFIG, default ~/.config/koophonectl/config.json).

` + exitCodeHelp,
		SilenceErrors: true,
		SilenceUsage:  true,
		// --version: the client module's version, which is the contract's (the repository's VERSION).
		Version: koophone.Version,
	}
	root.SetVersionTemplate("koophonectl {{.Version}} (" + runtime.Version() + ")\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	a.global.register(root)
	for _, svc := range services() {
		root.AddCommand(a.serviceCommand(svc))
	}
	root.AddCommand(a.exitCodesCommand())
	return root
}
