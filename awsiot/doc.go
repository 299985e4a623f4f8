// Package awsiot provides what the agent needs to connect to AWS IoT Core over
// MQTT-on-WebSocket: AWS credentials and a freshly SigV4-presigned
// wss://<endpoint>/mqtt URL for every connection attempt.
//
// Credentials come from an Amazon Cognito identity pool (unauthenticated
// identities, or authenticated ones with Options.LoginProvider and
// Options.LoginTokenFile) or, without a pool, from the standard AWS
// environment variables and shared credentials/config files.
//
// FromConfig builds the Provider of a resolved configuration (package config);
// New takes the same settings as Options.
//
// # Cognito identity
//
// GetId is called once for the life of the device: the identity id is written
// atomically (temp file, fsync, rename, directory fsync; mode 0600) to
// <StateDir>/cognito-identity-id and reused on every start, because the
// operator grants permissions to that identity (an AWS IoT policy attached to
// it, the pool's role for the whole pool). Concurrent first callers share a
// single GetId call.
//
// Cognito is called in the region named by the identity pool id
// ("<region>:<uuid>"), which may differ from the IoT endpoint's signing
// region; the endpoint can be overridden with Options.CognitoEndpoint or, when
// that is empty, AWS_ENDPOINT_URL_COGNITO_IDENTITY. The client is our own
// (cognitoapi.go: the service's JSON 1.1 protocol, checked against
// aws-sdk-go-v2 in tests): unsigned calls (GetId and GetCredentialsForIdentity
// need no credentials), at most 3 attempts per call, bounded answers and an
// HTTP client with timeouts.
//
// If Cognito later answers that the stored identity does not exist
// (ResourceNotFoundException), the provider logs an error that says exactly
// that and keeps failing: it deliberately does NOT create a new identity by
// itself, because a silently new identity would have no IoT policy attached
// and would leave the old permissions dangling. The operator deletes the file
// (and attaches the policy to the new id) to start over.
//
// # Authenticated identities
//
// With LoginProvider and LoginTokenFile set, GetId and
// GetCredentialsForIdentity carry Logins {LoginProvider: token}. The token
// (e.g. an ID token of a Cognito user pool or of an OpenID Connect provider)
// is read from LoginTokenFile, trimmed, on every Cognito call, so a program
// that signs in and renews it only has to replace the file (atomically); the
// next credentials refresh uses the new token. The token is a secret: it is
// never logged and never part of an error (errors name the file). For such an
// identity AWS IoT evaluates the IoT policy attached to the identity
// (aws iot attach-policy) together with the pool's authenticated role, and
// Diagnose says so first.
//
// # Credentials and refresh
//
// Cognito credentials are cached. Run refreshes them ahead of expiry
// (5 minutes before for the usual 1 h credentials, with jitter; proportionally
// earlier for short-lived ones) and Endpoint refreshes lazily when it finds
// them due. A failed refresh backs off exponentially with jitter (capped at
// 2 minutes) while the cached credentials keep being served as long as they
// are still valid. Environment and shared-file credentials are re-read on each
// Endpoint call, so a rotated file is picked up on the next connection.
//
// # Clock skew
//
// Devices without a real-time clock boot with a wrong clock. The provider
// learns the offset between the local clock and AWS from the Date header of
// every Cognito response and of any response handed to ObserveResponse (e.g. a
// 403 answer to the WebSocket upgrade), and signs with the corrected time.
// Offsets under 2 s are treated as none (Date has one-second resolution).
//
// # Concurrency
//
// All methods of Provider are safe for concurrent use. Run must be called at
// most once at a time; it blocks in the caller's goroutine until its context
// is done. The package starts no goroutines of its own and never calls
// time.Sleep: waits select on a timer and the context.
package awsiot
