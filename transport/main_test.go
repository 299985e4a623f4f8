package transport

import (
	"testing"

	"github.com/edge-agent/edge-agent/internal/rabbitmq"
	"github.com/edge-agent/edge-agent/internal/testproc"
)

// No goroutine is ignored: the transport, paho, gorilla and the in-process mochi broker must all have
// stopped by the end of the test binary; the shared RabbitMQ is stopped and no broker process is left.
func TestMain(m *testing.M) {
	testproc.VerifyTestMain(m, rabbitmq.CloseShared)
}
