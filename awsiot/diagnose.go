package awsiot

import (
	"fmt"
	"strings"
	"time"
)

// Kinds of failure Diagnose knows about.
const (
	// KindUpgradeRefused: the HTTP upgrade to WebSocket was answered with a
	// non-101 status (pass it as status; 403 is the usual one).
	KindUpgradeRefused = "upgrade-refused"
	// KindClosedAfterConnect: the WebSocket opened, then AWS closed the
	// connection right after MQTT CONNECT without a CONNACK.
	KindClosedAfterConnect = "closed-after-connect"
	// KindCognito: getting an identity or credentials from Cognito failed.
	KindCognito = "cognito"
)

// Diagnose is DiagnoseIdentity for an unauthenticated (guest) Cognito
// identity, or for credentials without an identity pool.
func Diagnose(kind string, status int, identityID, region, endpoint string, skew time.Duration) string {
	return DiagnoseIdentity(kind, status, identityID, false, region, endpoint, skew)
}

// DiagnoseIdentity turns a connection failure into advice for a person: what
// is likely wrong, most likely first, and the command or setting that fixes
// it. identityID is the Cognito identity id ("" without a pool),
// authenticated whether it signs in with a login (Status.Authenticated),
// region the signing region, endpoint the broker URL (without query string),
// skew the learnt clock offset (AWS minus local). The text is multi-line and
// holds no secrets.
//
// The order follows what AWS IoT evaluates: for an authenticated identity the
// AWS IoT policy attached to the identity (aws iot attach-policy) and the
// pool's authenticated role; for a guest identity only the pool's
// unauthenticated role.
func DiagnoseIdentity(kind string, status int, identityID string, authenticated bool, region, endpoint string, skew time.Duration) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	id := identityID
	if id == "" {
		id = "<identity id>"
	}
	role := "unauthenticated (guest)"
	if authenticated {
		role = "authenticated"
	}
	clockBad := skew.Abs() > MaxSigV4Skew
	clock := func(n int) {
		w("  %d. Clock: this device's clock is %s AWS time (SigV4 allows 5 minutes). edge-agent signs with the time learnt from AWS responses, "+
			"but fix the clock (NTP, systemd-timesyncd, a real-time clock) so the first attempt after boot works too.\n", n, skewWords(skew))
	}

	switch kind {
	case KindUpgradeRefused:
		if status == 403 || status == 401 {
			w("AWS IoT refused the WebSocket upgrade to %s with HTTP %d: the signed request was not accepted.\n", endpoint, status)
			w("Likely causes, most likely first:\n")
			n := 1
			if clockBad {
				clock(n)
				n++
			}
			w("  %d. Permissions: the credentials may not connect. ", n)
			if identityID != "" {
				w("For Cognito identity %s, the identity pool's %s IAM role needs a policy allowing "+
					"iot:Connect, iot:Publish, iot:Subscribe and iot:Receive on arn:aws:iot:%s:<account-id>:client/*, topic/*, topicfilter/*.\n", identityID, role, region)
			} else {
				w("The IAM user or role behind AWS_ACCESS_KEY_ID / the shared-config profile needs a policy allowing "+
					"iot:Connect, iot:Publish, iot:Subscribe and iot:Receive in %s.\n", region)
			}
			n++
			w("  %d. Region or endpoint: the URL is signed for region %q. The host must be your account's endpoint in that region: "+
				"`aws iot describe-endpoint --endpoint-type iot:Data-ATS --region %s`; set broker.url to wss://<that host>/mqtt and broker.region to match.\n", n, region, region)
			n++
			w("  %d. Credentials: expired, revoked or from another account/partition. ", n)
			if identityID != "" {
				w("edge-agent fetches fresh Cognito credentials for each attempt; check that identity %s still exists in the pool.\n", identityID)
			} else {
				w("Check AWS_ACCESS_KEY_ID / AWS_SESSION_TOKEN or the shared credentials file; temporary keys must be renewed.\n")
			}
			n++
			if !clockBad {
				if skew != 0 {
					w("  %d. Clock: the device clock is %s AWS time; edge-agent corrects for that, so this is unlikely the cause.\n", n, skewWords(skew))
				} else {
					w("  %d. Clock: no clock skew was measured; unlikely the cause.\n", n)
				}
			}
		} else {
			w("AWS IoT answered the WebSocket upgrade to %s with HTTP %d.\n", endpoint, status)
			switch {
			case status == 404 || status == 400:
				w("  The path or host is wrong: the URL must be wss://<prefix>-ats.iot.%s.amazonaws.com/mqtt (`aws iot describe-endpoint --endpoint-type iot:Data-ATS`).\n", region)
			case status == 429:
				w("  AWS is throttling connection attempts (at most 1 CONNECT per second per client id): is another device using the same client_id?\n")
			case status >= 500:
				w("  An error on the AWS side; edge-agent keeps retrying with backoff and keeps queuing messages.\n")
			default:
				w("  Unexpected status; check broker.url (wss://<your-endpoint>/mqtt) and any proxy in between.\n")
			}
			if clockBad {
				clock(1)
			}
		}

	case KindClosedAfterConnect:
		w("AWS IoT accepted the WebSocket connection to %s but closed it right after MQTT CONNECT, without a CONNACK.\n", endpoint)
		w("The signature was fine; AWS IoT did not authorize this client. Likely causes, most likely first:\n")
		attach := func(n int) {
			w("  %d. No AWS IoT policy is attached to the Cognito identity %s. Attach one that allows iot:Connect for this client id "+
				"(and iot:Publish/iot:Receive on your topics, iot:Subscribe on your topic filters):\n"+
				"       aws iot attach-policy --policy-name <your-policy> --target %s --region %s\n", n, identityID, identityID, region)
		}
		rolePolicy := func(n int) {
			w("  %d. The identity pool's %s IAM role lacks AWS IoT permissions: allow iot:Connect, iot:Publish, iot:Subscribe and iot:Receive "+
				"on arn:aws:iot:%s:<account-id>:client/*, topic/*, topicfilter/* in the role's policy.\n", n, role, region)
		}
		switch {
		case identityID != "" && authenticated:
			attach(1)
			w("     (`edge-agent identity` prints the id. This identity is authenticated (cognito.login_provider), so the AWS IoT policy " +
				"attached to it is what AWS IoT evaluates, together with the role's IAM policy, item 2; a new identity, e.g. another user, needs its own attach-policy.)\n")
			rolePolicy(2)
		case identityID != "":
			rolePolicy(1)
			w("     (This identity is unauthenticated (guest): AWS documents the role's IAM policy as all that counts for it.)\n")
			attach(2)
			w("     (`edge-agent identity` prints the id. An attached IoT policy is evaluated for authenticated identities; " +
				"sign in with cognito.login_provider and cognito.login_token_file to use one.)\n")
		default:
			w("  1. The IAM user or role behind the credentials lacks AWS IoT permissions: allow iot:Connect, iot:Publish, iot:Subscribe and "+
				"iot:Receive on arn:aws:iot:%s:<account-id>:client/*, topic/*, topicfilter/*. (With a Cognito identity pool the fix is "+
				"`aws iot attach-policy --policy-name <your-policy> --target %s` plus the role's IAM policy.)\n", region, id)
		}
		n := 3
		if identityID == "" {
			n = 2
		}
		w("  %d. The client id is not allowed: the policy restricts iot:Connect to certain client ids, or client_id starts with '$' or is longer than 128 bytes.\n", n)
		if clockBad {
			clock(n + 1)
		}

	case KindCognito:
		w("Getting AWS credentials from Amazon Cognito failed, so edge-agent cannot connect to %s (messages keep being queued).\n", endpoint)
		if identityID != "" {
			w("  Identity: %s.\n", identityID)
		}
		w("  1. Network: the device must reach cognito-identity.<pool-region>.amazonaws.com over HTTPS (DNS, firewall, proxy), or the cognito.endpoint override.\n")
		if authenticated {
			w("  2. Login: the identity pool must list cognito.login_provider as an authentication provider (with this app client), and " +
				"cognito.login_token_file must hold a current, unexpired ID token from that provider: is the program that renews the token running?\n")
		} else {
			w("  2. Identity pool: cognito.identity_pool_id must name an existing pool with guest access (unauthenticated identities) enabled " +
				"and an unauthenticated IAM role.\n")
		}
		w("  3. Identity not found: if the pool was recreated or the identity deleted, delete %s in state_dir and restart; "+
			"then attach the IoT policy to the new id: aws iot attach-policy --policy-name <your-policy> --target <new id>.\n", IdentityFileName)
		if clockBad {
			clock(4)
		}

	default:
		w("Connecting to AWS IoT at %s failed (%s", endpoint, kind)
		if status != 0 {
			w(", HTTP %d", status)
		}
		w(").\n")
		if identityID != "" {
			w("  Cognito identity: %s; to authorize it: aws iot attach-policy --policy-name <your-policy> --target %s\n", identityID, identityID)
		}
		if clockBad {
			clock(1)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func skewWords(skew time.Duration) string {
	switch {
	case skew > 0:
		return skew.Round(time.Second).String() + " behind"
	case skew < 0:
		return (-skew).Round(time.Second).String() + " ahead of"
	default:
		return "in step with"
	}
}
