// Package deploy holds the container image, the Kubernetes manifests and the compose file of koophone-gateway,
// and (in deploy_test.go, manifest_test.go and start_test.go) the checks that keep them in step with the server,
// up to starting each of them with the real gateway binary. It is its own module so that the
// Kubernetes and kustomize libraries the checks need stay out of the server's dependencies.
package deploy
