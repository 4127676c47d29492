package koophone

// Version is the version of this module and of the contract its stubs were generated from (the repository's
// VERSION; a test in the server module holds the two equal). Tag the module's releases client/go/vX.Y.Z.
const Version = "0.1.0"
