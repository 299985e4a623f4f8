// Package testproc runs the child processes of test support packages (brokers such
// as internal/aedes and internal/rabbitmq) so that none outlives its test.
//
// It is test support only: production code must never import it. Every process
// started with Start runs in its own process group, gets SIGKILL from the kernel if
// the test binary dies (Pdeathsig, Linux), and carries a marker in its environment
// that its own children inherit — also those that detach, such as an Erlang epmd
// daemon. Leftovers lists the live processes that carry this test binary's marker:
// the process-level counterpart of goleak, for a TestMain to call after m.Run.
//
// Concurrency: the methods of Proc are safe to call from several goroutines.
// Start's only goroutine (the one that reaps the process) ends when the process
// exits; Stop and Kill wait for it.
package testproc
