// Package e2e holds the black-box tests of the built reconciler binary against a real
// single-node Docker swarm. Everything lives in _test.go files; run it with
//
//	go test ./e2e/ -run . -count=1 -v -timeout 20m
//
// TestMain builds the test image (testdata/echo, packaged FROM scratch through the Engine API,
// so no registry is needed) and the reconciler binary once per run. Without a Docker daemon
// in swarm mode the suite is skipped, unless CI is set, in which case the run fails.
//
// Environment:
//
//	CI                  non-empty: a missing daemon or inactive swarm fails the run
//	E2E_LOCK_DIR        --lock-dir for every reconciler the suite starts (default: the
//	                    product's /run/lock/swarm-reconciler, so the suite's reconcilers and
//	                    any other reconciler on the host see each other's app locks)
//	E2E_KEEP_LOGS       non-empty: print the reconciler log of passing tests too
package e2e
