// Package docstest runs the shell examples of README.md and docs/*.md against the gateway as `make run` starts it
// (the same binary and defaults, on free loopback ports) and checks what they answer, so the documentation
// cannot drift from the code. The package holds only its test; docstest_test.go says how blocks are marked.
package docstest
