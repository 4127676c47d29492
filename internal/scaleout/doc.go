// Package scaleout holds the end-to-end test of several gateway replicas sharing one Redis (scaleout_test.go):
// pollers, quota and idempotency keys across replicas, a replica stopped and Redis restarted mid-watch.
package scaleout
