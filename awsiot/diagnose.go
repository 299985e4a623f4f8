package awsiot

import (
	"cmp"
	"fmt"
	"strings"
	"time"
)

// Kinds of failure Diagnose knows about.
const (
	// KindUpgradeRefused: the HTTP upgrade to WebSocket was answered with a
	// non-101 status (Failure.Status; 403 is the usual one).
	KindUpgradeRefused = "upgrade-refused"
	// KindClosedAfterConnect: the WebSocket opened, then AWS closed the
	// connection right after MQTT CONNECT without a CONNACK.
	KindClosedAfterConnect = "closed-after-connect"
	// KindCognito: getting an identity or credentials from Cognito failed.
	KindCognito = "cognito"
)

// Failure describes a failed connection to AWS IoT for Diagnose.
type Failure struct {
	Kind          string        // one of the Kind constants
	Status        int           // HTTP status of a refused upgrade; 0 otherwise
	IdentityID    string        // Cognito identity id; "" without a pool
	Authenticated bool          // the identity signs in with a login (Status.Authenticated)
	Region        string        // the signing region
	Endpoint      string        // the broker URL without query string
	Skew          time.Duration // the learnt clock offset, AWS minus local (Status.ClockSkew)
	IdentityFile  string        // the file under state_dir that holds IdentityID; "" = IdentityFileName
}

// Diagnose turns a connection failure into advice for a person: what is likely wrong, most likely
// first, and the command or setting that fixes it. The text is multi-line and holds no secrets.
//
// The order follows what AWS IoT evaluates: for an authenticated identity the AWS IoT policy
// attached to the identity (aws iot attach-policy) and the pool's authenticated role; for a guest
// identity only the pool's unauthenticated role.
func Diagnose(f Failure) string {
	d := &diagnosis{Failure: f, clockBad: f.Skew.Abs() > MaxSigV4Skew}
	switch f.Kind {
	case KindUpgradeRefused:
		if f.Status == 403 || f.Status == 401 {
			d.signatureRefused()
		} else {
			d.upgradeStatus()
		}
	case KindClosedAfterConnect:
		d.closedAfterConnect()
	case KindCognito:
		d.cognito()
	default:
		d.other()
	}
	return strings.TrimRight(d.b.String(), "\n")
}

// diagnosis writes the advice for one Failure.
type diagnosis struct {
	Failure
	clockBad bool // the skew is more than SigV4 allows
	b        strings.Builder
}

func (d *diagnosis) w(format string, a ...any) { fmt.Fprintf(&d.b, format, a...) }

// role names the identity pool role that applies to the identity.
func (d *diagnosis) role() string {
	if d.Authenticated {
		return "authenticated"
	}
	return "unauthenticated (guest)"
}

// clock writes item n: the device clock is off by more than SigV4 allows.
func (d *diagnosis) clock(n int) {
	d.w("  %d. Clock: this device's clock is %s AWS time (SigV4 allows 5 minutes). edge-agent signs with the time learnt from AWS responses, "+
		"but fix the clock (NTP, systemd-timesyncd, a real-time clock) so the first attempt after boot works too.\n", n, skewWords(d.Skew))
}

// signatureRefused: HTTP 401/403 to the upgrade, the signed request was not accepted.
func (d *diagnosis) signatureRefused() {
	d.w("AWS IoT refused the WebSocket upgrade to %s with HTTP %d: the signed request was not accepted.\n", d.Endpoint, d.Status)
	d.w("Likely causes, most likely first:\n")
	n := 1
	if d.clockBad {
		d.clock(n)
		n++
	}
	d.w("  %d. Permissions: the credentials may not connect. ", n)
	if d.IdentityID != "" {
		d.w("For Cognito identity %s, the identity pool's %s IAM role needs a policy allowing "+
			"iot:Connect, iot:Publish, iot:Subscribe and iot:Receive on arn:aws:iot:%s:<account-id>:client/*, topic/*, topicfilter/*.\n", d.IdentityID, d.role(), d.Region)
	} else {
		d.w("The IAM user or role behind AWS_ACCESS_KEY_ID / the shared-config profile needs a policy allowing "+
			"iot:Connect, iot:Publish, iot:Subscribe and iot:Receive in %s.\n", d.Region)
	}
	n++
	d.w("  %d. Region or endpoint: the URL is signed for region %q. The host must be your account's endpoint in that region: "+
		"`aws iot describe-endpoint --endpoint-type iot:Data-ATS --region %s`; set broker.url to wss://<that host>/mqtt and broker.region to match.\n", n, d.Region, d.Region)
	n++
	d.w("  %d. Credentials: expired, revoked or from another account/partition. ", n)
	if d.IdentityID != "" {
		d.w("edge-agent fetches fresh Cognito credentials for each attempt; check that identity %s still exists in the pool.\n", d.IdentityID)
	} else {
		d.w("Check AWS_ACCESS_KEY_ID / AWS_SESSION_TOKEN or the shared credentials file; temporary keys must be renewed.\n")
	}
	n++
	switch {
	case d.clockBad:
	case d.Skew != 0:
		d.w("  %d. Clock: the device clock is %s AWS time; edge-agent corrects for that, so this is unlikely the cause.\n", n, skewWords(d.Skew))
	default:
		d.w("  %d. Clock: no clock skew was measured; unlikely the cause.\n", n)
	}
}

// upgradeStatus: any other non-101 answer to the upgrade.
func (d *diagnosis) upgradeStatus() {
	d.w("AWS IoT answered the WebSocket upgrade to %s with HTTP %d.\n", d.Endpoint, d.Status)
	switch s := d.Status; {
	case s == 404 || s == 400:
		d.w("  The path or host is wrong: the URL must be wss://<prefix>-ats.iot.%s.amazonaws.com/mqtt (`aws iot describe-endpoint --endpoint-type iot:Data-ATS`).\n", d.Region)
	case s == 429:
		d.w("  AWS is throttling connection attempts (at most 1 CONNECT per second per client id): is another device using the same client_id?\n")
	case s >= 500:
		d.w("  An error on the AWS side; edge-agent keeps retrying with backoff and keeps queuing messages.\n")
	default:
		d.w("  Unexpected status; check broker.url (wss://<your-endpoint>/mqtt) and any proxy in between.\n")
	}
	if d.clockBad {
		d.clock(1)
	}
}

// closedAfterConnect: the signature was fine, AWS IoT did not authorize the client.
func (d *diagnosis) closedAfterConnect() {
	id := d.IdentityID
	d.w("AWS IoT accepted the WebSocket connection to %s but closed it right after MQTT CONNECT, without a CONNACK.\n", d.Endpoint)
	d.w("The signature was fine; AWS IoT did not authorize this client. Likely causes, most likely first:\n")
	switch {
	case id != "" && d.Authenticated:
		d.attachPolicy(1)
		d.w("     (`edge-agent identity` prints the id. This identity is authenticated (cognito.login_provider), so the AWS IoT policy " +
			"attached to it is what AWS IoT evaluates, together with the role's IAM policy, item 2; a new identity, e.g. another user, needs its own attach-policy.)\n")
		d.rolePolicy(2)
	case id != "":
		d.rolePolicy(1)
		d.w("     (This identity is unauthenticated (guest): AWS documents the role's IAM policy as all that counts for it.)\n")
		d.attachPolicy(2)
		d.w("     (`edge-agent identity` prints the id. An attached IoT policy is evaluated for authenticated identities; " +
			"sign in with cognito.login_provider and cognito.login_token_file to use one.)\n")
	default:
		d.w("  1. The IAM user or role behind the credentials lacks AWS IoT permissions: allow iot:Connect, iot:Publish, iot:Subscribe and "+
			"iot:Receive on arn:aws:iot:%s:<account-id>:client/*, topic/*, topicfilter/*. (With a Cognito identity pool the fix is "+
			"`aws iot attach-policy --policy-name <your-policy> --target %s` plus the role's IAM policy.)\n", d.Region, "<identity id>")
	}
	n := 3
	if id == "" {
		n = 2
	}
	d.w("  %d. The client id is not allowed: the policy restricts iot:Connect to certain client ids, or client_id starts with '$' or is longer than 128 bytes.\n", n)
	if d.clockBad {
		d.clock(n + 1)
	}
}

// attachPolicy writes item n: no AWS IoT policy is attached to the identity.
func (d *diagnosis) attachPolicy(n int) {
	d.w("  %d. No AWS IoT policy is attached to the Cognito identity %s. Attach one that allows iot:Connect for this client id "+
		"(and iot:Publish/iot:Receive on your topics, iot:Subscribe on your topic filters):\n"+
		"       aws iot attach-policy --policy-name <your-policy> --target %s --region %s\n", n, d.IdentityID, d.IdentityID, d.Region)
}

// rolePolicy writes item n: the pool's role lacks AWS IoT permissions.
func (d *diagnosis) rolePolicy(n int) {
	d.w("  %d. The identity pool's %s IAM role lacks AWS IoT permissions: allow iot:Connect, iot:Publish, iot:Subscribe and iot:Receive "+
		"on arn:aws:iot:%s:<account-id>:client/*, topic/*, topicfilter/* in the role's policy.\n", n, d.role(), d.Region)
}

// cognito: no identity or credentials from Cognito.
func (d *diagnosis) cognito() {
	d.w("Getting AWS credentials from Amazon Cognito failed, so edge-agent cannot connect to %s (messages keep being queued).\n", d.Endpoint)
	if d.IdentityID != "" {
		d.w("  Identity: %s.\n", d.IdentityID)
	}
	d.w("  1. Network: the device must reach cognito-identity.<pool-region>.amazonaws.com over HTTPS (DNS, firewall, proxy), or the cognito.endpoint override.\n")
	if d.Authenticated {
		d.w("  2. Login: the identity pool must list cognito.login_provider as an authentication provider (with this app client), and " +
			"cognito.login_token_file must hold a current, unexpired ID token from that provider: is the program that renews the token running?\n")
	} else {
		d.w("  2. Identity pool: cognito.identity_pool_id must name an existing pool with guest access (unauthenticated identities) enabled " +
			"and an unauthenticated IAM role.\n")
	}
	d.w("  3. Identity not found: if the pool was recreated or the identity deleted, delete %s in state_dir and restart; "+
		"then attach the IoT policy to the new id: aws iot attach-policy --policy-name <your-policy> --target <new id>.\n", cmp.Or(d.IdentityFile, IdentityFileName))
	if d.clockBad {
		d.clock(4)
	}
}

// other: a failure of another kind.
func (d *diagnosis) other() {
	d.w("Connecting to AWS IoT at %s failed (%s", d.Endpoint, d.Kind)
	if d.Status != 0 {
		d.w(", HTTP %d", d.Status)
	}
	d.w(").\n")
	if d.IdentityID != "" {
		d.w("  Cognito identity: %s; to authorize it: aws iot attach-policy --policy-name <your-policy> --target %s\n", d.IdentityID, d.IdentityID)
	}
	if d.clockBad {
		d.clock(1)
	}
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
