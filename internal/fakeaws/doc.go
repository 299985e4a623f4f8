// Package fakeaws is test support: faithful fakes of the two AWS services the
// aws-iot provider talks to, on 127.0.0.1, for tests and demos. Production
// code never imports it.
//
//   - IoT (NewIoT) is an AWS IoT Core data endpoint for MQTT over WebSocket:
//     TLS with a CA generated for the test (CAFile, CAPEM), an upgrade that
//     requires the "mqtt" subprotocol, and its own, independent SigV4
//     verification of every presigned URL (its canonical request code shares
//     nothing with the signer under test, so a bug in one is caught by the
//     other). Refusals are 403 with a Date header from the fake's clock and an
//     AWS-like JSON body; accepted connections relay raw MQTT bytes to a real
//     broker's plain TCP listener. Every attempt is recorded (Attempts).
//   - Cognito (NewCognito) is a Cognito Identity endpoint speaking the JSON 1.1
//     protocol to the real SDK client; Cognito.OnIssue(iot.AllowCredentials)
//     links the two, so credentials Cognito issues open the IoT endpoint.
//   - CredStore is the registry of credentials a fake accepts; CA issues the
//     test certificates.
//
// Each fake has a clock of its own: real time plus an offset set with
// SetClockOffset, to simulate a device whose clock is wrong. Fakes stop when
// the test that created them ends (t.Cleanup) and wait for every goroutine
// they started. All exported methods are safe for concurrent use.
package fakeaws
