package awsregion

import (
	"strings"
	"testing"
)

func TestFromHost(t *testing.T) {
	tests := []struct {
		host, want string
		ok         bool
	}{
		{"a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com", "eu-west-1", true},
		{"a1b2c3d4e5f6g7.iot.us-east-1.amazonaws.com", "us-east-1", true},
		{"data.iot.us-gov-west-1.amazonaws.com", "us-gov-west-1", true},
		{"xyz-ats.iot.cn-north-1.amazonaws.com.cn", "cn-north-1", true},
		{"XYZ-ATS.IOT.AP-SOUTHEAST-2.AMAZONAWS.COM", "ap-southeast-2", true},
		{"xyz-ats.iot.eu-central-1.amazonaws.com.", "eu-central-1", true},
		{"xyz-ats.iot.eu-central-1.amazonaws.com:443", "eu-central-1", true},
		{"a.b.iot.il-central-1.amazonaws.com", "il-central-1", true},
		{"iot.eu-west-1.amazonaws.com", "", false},    // no endpoint prefix
		{".iot.eu-west-1.amazonaws.com", "", false},   // empty prefix label
		{"x..iot.eu-west-1.amazonaws.com", "", false}, // empty label
		{"x.iot.eu-west.amazonaws.com", "", false},    // region without number
		{"x.iot.eu-west-1a.amazonaws.com", "", false}, // bad region
		{"x.iot.Eu_west-1.amazonaws.com", "", false},  // bad region chars
		{"x.iot.eu-west-1.amazonaws.org", "", false},  // not AWS
		{"x.iot.eu-west-1.amazonaws.com.evil.example", "", false},
		{"x.s3.eu-west-1.amazonaws.com", "", false}, // other service
		{"x.iotx.eu-west-1.amazonaws.com", "", false},
		{"mqtt.example.com", "", false},
		{"127.0.0.1:8443", "", false},
		{"", "", false},
		{"amazonaws.com", "", false},
		{".amazonaws.com", "", false},
	}
	for _, tc := range tests {
		got, ok := FromHost(tc.host)
		if got != tc.want || ok != tc.ok {
			t.Errorf("FromHost(%q) = %q, %t; want %q, %t", tc.host, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzFromHost(f *testing.F) {
	for _, s := range []string{
		"a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com", "x.iot.cn-north-1.amazonaws.com.cn",
		"x.iot.us-gov-west-1.amazonaws.com:443", "iot.eu-west-1.amazonaws.com", "[::1]:443", "",
		"x.iot..amazonaws.com", "x.iot.a-b-1.amazonaws.com.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		region, ok := FromHost(host)
		if !ok {
			if region != "" {
				t.Fatalf("FromHost(%q) = %q with ok=false", host, region)
			}
			return
		}
		if !Valid(region) {
			t.Fatalf("FromHost(%q) = invalid region %q", host, region)
		}
		if !strings.Contains(strings.ToLower(host), ".iot."+region+".amazonaws.com") {
			t.Fatalf("FromHost(%q) = %q, not taken from .iot.<region>.amazonaws.com", host, region)
		}
		// Case does not matter for DNS names.
		if r2, ok2 := FromHost(strings.ToUpper(host)); strings.EqualFold(host, strings.ToLower(host)) && (r2 != region || !ok2) {
			t.Fatalf("FromHost(upper(%q)) = %q, %t; want %q", host, r2, ok2, region)
		}
	})
}

func TestFromID(t *testing.T) {
	for id, want := range map[string]string{
		"eu-west-1:0a1b2c3d-0000-4000-8000-00000000abcd":     "eu-west-1",
		"us-gov-west-1:0A1B2C3D-0000-4000-8000-00000000ABCD": "us-gov-west-1",
		"eu-west-1:0a1b2c3d-0000-4000-8000-00000000abc":      "", // short uuid
		"eu-west-1:00ab": "",
		"eu-west:0a1b2c3d-0000-4000-8000-00000000abcd": "", // no region number
		"0a1b2c3d-0000-4000-8000-00000000abcd":         "",
		"":                                             "",
	} {
		got, ok := FromID(id)
		if got != want || ok != (want != "") {
			t.Errorf("FromID(%q) = %q, %t; want %q", id, got, ok, want)
		}
	}
}
