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
//	benchclient posts -socket S -n N -topic T -size B -tag TAG
//	                                     N sequential POST /v1/publish?qos=1, one message each (a
//	                                     sensor with curl); every answer must be 202
//	benchclient settle -pid P [-quiet D]  waits until /proc/P/io write_bytes has not changed for D
//	                                     and prints it
//	benchclient proxy -target HOST:PORT -delay D
//	                                     internal/netproxy adding D each way; prints its port, runs
//	                                     until SIGTERM
//	benchclient wait [-socket S] -checker FILE -topic T -n N [-after UNIXNANO] [-pid P]
//	                                     waits until the checker subscriber's output (mosquitto_sub
//	                                     -F '%t %p') holds N distinct payloads on topic T and the
//	                                     agent's queue depth is 0; prints when the agent connected
//	                                     (status "since", if it connected after -after), when the
//	                                     depth reached 0 and when the checker had everything, as
//	                                     shell assignments; without -socket only the checker counts;
//	                                     with -pid also the peak RssAnon of that process
//
// Every job has a bounded timeout and exits 1 with a message naming what was
// missing. Concurrency: each job runs on the main goroutine (proxy's goroutines are
// netproxy's, stopped by its Close); the HTTP client's
// connection goroutines are released (CloseIdleConnections) before exit.
package main
