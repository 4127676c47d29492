// Package koophone is the Go client of the KooPhone gateway: dialling with TLS, mTLS and an API key, the retry
// policy of the contract built in, request ids for writes, the error catalogue, and following a stream to its end.
// The stubs themselves are in package koophonev1, generated from the contract without its server-side options, so
// this module needs only grpc and protobuf.
//
//	c, err := koophone.New("gateway.example:9090", koophone.Config{TLS: true, APIKey: os.Getenv("KOOPHONE_API_KEY")})
//	if err != nil { ... }
//	defer c.Close()
//	page, err := c.Instances.ListInstances(ctx, &koophonev1.ListInstancesRequest{PageNo: 1, PageSize: 100})
//	if e := koophone.ErrorOf(err); e != nil && e.OutcomeUnknown() { ... check before repeating ... }
package koophone
