"""google.rpc (Status, ErrorInfo, RetryInfo, BadRequest, Code) generated from the protos vendored in the gateway's
repository, kept inside this package so that it never writes into the `google` namespace that
googleapis-common-protos owns, and so that decoding errors needs neither grpcio-status nor googleapis-common-protos."""
