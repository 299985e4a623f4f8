package agent

import (
	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/localapi"
)

// maxFilters bounds the filters of one subscribe request.
const maxFilters = 16

// hubLimits bound what the hub holds for local subscribers ([api]; see hub.go).
type hubLimits struct {
	subscriberBuffer int64 // bytes queued for one subscriber stream
	subscriberBudget int64 // bytes queued for all subscriber streams
	maxSubscribers   int   // subscriber streams at once
}

func hubLimitsFor(cfg *config.Config) hubLimits {
	return hubLimits{
		subscriberBuffer: int64(cfg.API.SubscriberBuffer),
		subscriberBudget: int64(cfg.API.SubscriberBudget),
		maxSubscribers:   cfg.API.MaxSubscribers,
	}
}

// apiLimits are the local API's bounds, read from a Config that config.Parse or config.Load
// resolved: its [api] keys and, for topics, each broker's Limits (the provider's rules).
func apiLimits(cfg *config.Config) localapi.Limits {
	return localapi.Limits{
		MaxPayload:     int64(cfg.API.MaxPayload),
		MaxTopicBytes:  maxTopicBytes(cfg),
		MaxBatchBytes:  int64(cfg.API.MaxBatchBytes),
		MaxBatchLines:  cfg.API.MaxBatchLines,
		MaxFilters:     maxFilters,
		BodyBudget:     int64(cfg.API.BodyBudget),
		MaxConnections: cfg.API.MaxConnections,
		ReadTimeout:    cfg.API.ReadTimeout.Duration,
		IdleTimeout:    cfg.API.IdleTimeout.Duration,
		QueueMaxBytes:  int64(cfg.Queue.MaxBytes),
		Overflow:       cfg.Queue.Overflow,
	}
}

// maxTopicBytes is the longest topic any broker takes.
func maxTopicBytes(cfg *config.Config) int {
	n := 0
	for _, b := range cfg.Brokers {
		n = max(n, b.Limits.Topic.Bytes())
	}
	return n
}
