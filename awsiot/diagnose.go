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

// Diagnose turns a connection failure into advice for a person: what is
// likely wrong, most likely first, and the command or setting that fixes it.
// identityID is the Cognito identity id ("" without a pool), region the
// signing region, endpoint the broker URL (without query string), skew the
// learnt clock offset (AWS minus local). The text is multi-line and holds no
// secrets.
func Diagnose(kind string, status int, identityID, region, endpoint string, skew time.Duration) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	id := identityID
	if id == "" {
		id = "<identity id>"
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
				w("For Cognito identity %s, the identity pool's unauthenticated (guest) IAM role needs a policy allowing "+
					"iot:Connect, iot:Publish, iot:Subscribe and iot:Receive on arn:aws:iot:%s:<account-id>:client/*, topic/*, topicfilter/*.\n", identityID, region)
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
		if identityID != "" {
			w("  1. No AWS IoT policy is attached to the Cognito identity %s. Attach one that allows iot:Connect for this client id "+
				"(and iot:Publish/iot:Receive on your topics, iot:Subscribe on your topic filters):\n"+
				"       aws iot attach-policy --policy-name <your-policy> --target %s --region %s\n"+
				"     (`edge-agent identity` prints the id. Authenticated identities need both this IoT policy and the role's IAM policy; "+
				"for guest identities AWS documents the role's IAM policy, item 2, as what counts.)\n", identityID, identityID, region)
			w("  2. The identity pool's IAM role lacks AWS IoT permissions: allow iot:Connect, iot:Publish, iot:Subscribe and iot:Receive "+
				"on arn:aws:iot:%s:<account-id>:client/*, topic/*, topicfilter/* in the role's policy.\n", region)
		} else {
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
		w("  2. Identity pool: cognito.identity_pool_id must name an existing pool with guest access (unauthenticated identities) enabled " +
			"and an unauthenticated IAM role.\n")
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
