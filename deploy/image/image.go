// Package image holds the files the gateway image carries besides its binary, for deploy/cmd/mkimage (which embeds
// them) and deploy/Dockerfile (which copies them), so both images hold the same bytes at the same paths.
package image

import _ "embed"

// KeysPath is where the image keeps its API keys file, the one its KOOPHONE_AUTH_KEYS_FILE names.
const KeysPath = "/etc/koophone/auth/keys.yaml"

// Keys is an API keys file that admits no caller (see keys.yaml): the image starts with authentication on and
// serves nobody until the operator mounts a keys file of their own over it.
//
//go:embed keys.yaml
var Keys []byte
