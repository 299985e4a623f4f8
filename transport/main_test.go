package transport

import (
	"testing"

	"go.uber.org/goleak"
)

// No goroutine is ignored: the transport, paho, gorilla and the in-process mochi broker must all have
// stopped by the end of the test binary.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
