// Command benchclient is the measuring half of scripts/bench.sh: small jobs
// that are awkward in a shell script. It is a separate main package and is
// never linked into the edge-agent binary.
//
//	benchclient ports N                  print N distinct free TCP ports on 127.0.0.1
//	benchclient lines -n N -size B -tag T
//	                                     print N unique lines of exactly B bytes (plus "\n")
//	benchclient latency -socket S -n N -topic T -size B
//	                                     N sequential POST /v1/publish?wait=delivered; prints
//	                                     p50/p90/p99/max/mean in milliseconds
//	benchclient wait -socket S -checker FILE -topic T -n N [-after UNIXNANO]
//	                                     waits until the checker subscriber's output (mosquitto_sub
//	                                     -F '%t %p') holds N distinct payloads on topic T and the
//	                                     agent's queue depth is 0; prints when the agent connected
//	                                     (status "since", if it connected after -after), when the
//	                                     depth reached 0 and when the checker had everything, as
//	                                     shell assignments
//
// Every job has a bounded timeout and exits 1 with a message naming what was
// missing. Concurrency: each job runs on the main goroutine; the HTTP client's
// connection goroutines are released (CloseIdleConnections) before exit.
package main
