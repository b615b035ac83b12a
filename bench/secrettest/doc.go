// Package secrettest holds end-to-end security tests against the built
// pushpipe binary: `pushpipe api` refuses to start without credentials, and
// no secret (API tokens, the APNs .p8 key, the FCM service-account key, the
// provider bearer tokens made from them) appears in any log line of a whole
// pipeline run at debug level, nor in the output of `status` and `dlq`.
//
// It has no code of its own; the tests are in the _test.go files.
package secrettest
