package fakeaws

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentity"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentity/types"
)

// The fake must satisfy the real SDK client, the reference for the protocol
// (awsiot has its own client, compared with the SDK in its tests): values,
// modelled exceptions and retries of 5xx answers.
func TestCognitoFakeWithSDKClient(t *testing.T) {
	c := NewCognito(t)
	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	sdk := cognitoidentity.New(cognitoidentity.Options{
		Region:       c.Region(),
		Credentials:  aws.AnonymousCredentials{},
		BaseEndpoint: aws.String(c.URL()),
		HTTPClient:   hc,
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			o.RateLimiter = ratelimit.None
		}),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	idOut, err := sdk.GetId(ctx, &cognitoidentity.GetIdInput{IdentityPoolId: aws.String(c.PoolID())})
	if err != nil {
		t.Fatalf("GetId: %v", err)
	}
	id := aws.ToString(idOut.IdentityId)
	if !strings.HasPrefix(id, c.Region()+":") {
		t.Fatalf("GetId returned %q", id)
	}
	crOut, err := sdk.GetCredentialsForIdentity(ctx, &cognitoidentity.GetCredentialsForIdentityInput{IdentityId: aws.String(id)})
	if err != nil {
		t.Fatalf("GetCredentialsForIdentity: %v", err)
	}
	issued := c.Issued()
	cr := crOut.Credentials
	if len(issued) != 1 || cr == nil || aws.ToString(cr.AccessKeyId) != issued[0].AccessKeyID || aws.ToString(cr.SecretKey) != issued[0].SecretKey ||
		aws.ToString(cr.SessionToken) != issued[0].SessionToken || cr.Expiration == nil || !cr.Expiration.Equal(issued[0].Expires) ||
		aws.ToString(crOut.IdentityId) != id {
		t.Fatalf("SDK parsed %+v, the fake issued %+v", cr, issued)
	}
	if n := c.SignedCalls(); n != 0 {
		t.Fatalf("%d calls signed with anonymous credentials", n)
	}

	_, err = sdk.GetId(ctx, &cognitoidentity.GetIdInput{IdentityPoolId: aws.String("eu-west-1:00000000-0000-4000-8000-000000000000")})
	var notFound *types.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		t.Fatalf("GetId for an unknown pool: %v, want ResourceNotFoundException", err)
	}

	c.RequireLogin("accounts.google.com", "eyJ.good.sig")
	_, err = sdk.GetCredentialsForIdentity(ctx, &cognitoidentity.GetCredentialsForIdentityInput{IdentityId: aws.String(id),
		Logins: map[string]string{"accounts.google.com": "eyJ.bad.sig"}})
	var notAuth *types.NotAuthorizedException
	if !errors.As(err, &notAuth) || strings.Contains(err.Error(), "eyJ.bad.sig") {
		t.Fatalf("wrong login token: %v, want NotAuthorizedException without the token", err)
	}
	if got := c.Logins(); got[len(got)-1].Logins["accounts.google.com"] != "eyJ.bad.sig" {
		t.Fatalf("the fake recorded %+v", got[len(got)-1])
	}
	c.RequireLogin("", "")

	c.DeleteIdentity(id)
	_, err = sdk.GetCredentialsForIdentity(ctx, &cognitoidentity.GetCredentialsForIdentityInput{IdentityId: aws.String(id)})
	if !errors.As(err, &notFound) {
		t.Fatalf("deleted identity: %v, want ResourceNotFoundException", err)
	}

	c.SetUnavailable(true)
	before := c.GetIdCalls()
	_, err = sdk.GetId(ctx, &cognitoidentity.GetIdInput{IdentityPoolId: aws.String(c.PoolID())})
	var internal *types.InternalErrorException
	if !errors.As(err, &internal) { // the fake alternates 503 and 500
		var ae interface{ ErrorCode() string }
		if !errors.As(err, &ae) || ae.ErrorCode() != "ServiceUnavailableException" {
			t.Fatalf("GetId while unavailable: %v", err)
		}
	}
	if n := c.GetIdCalls() - before; n != 3 {
		t.Fatalf("the SDK tried %d times while unavailable, want 3 (retried 5xx)", n)
	}
}
