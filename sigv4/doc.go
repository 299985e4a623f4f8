// Package sigv4 presigns AWS IoT Core WebSocket URLs with AWS Signature
// Version 4, the way AWS documents it for MQTT over WebSocket and the way AWS
// Amplify's PubSub signer does it: service "iotdevicegateway", method GET, the
// host header as the only signed header, the SHA-256 of an empty payload, and
// the session token appended as X-Amz-Security-Token after the signature, so
// that it is never part of the canonical request.
//
// The signing itself is done by aws-sdk-go-v2's v4 signer; this package only
// shapes the request, validates the input and places the token.
//
// It knows nothing of MQTT, connections or queues. Every function is pure
// (no I/O, no clock: the caller passes the signing time, already corrected
// for clock skew) and safe for concurrent use.
package sigv4
