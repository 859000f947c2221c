package dlp

import (
	"strings"
	"testing"
)

// TestLargeAdversarialInputs scans large inputs built to make a careless
// detector quadratic (every position starting a long match). Each is
// 300 KB; a quadratic pass would not finish within the test timeout.
func TestLargeAdversarialInputs(t *testing.T) {
	const n = 300 << 10
	rep := func(s string) string { return strings.Repeat(s, n/len(s)) }
	inputs := map[string]string{
		"digits":        rep("1"),
		"han-places":    rep("北京市"),
		"han-surnames":  rep("王"),
		"address-chain": "家住" + rep("天河路3号"),
		"urls":          rep("http://"),
		"ats":           rep("@"),
		"email-domains": rep("a@b."),
		"dotted":        rep("1."),
		"dashed":        rep("1-"),
		"plus":          rep("+1 "),
		"names":         rep("Patient John "),
		"hex-colons":    rep("a:"),
		"numerals":      rep("二〇"),
	}
	for name, in := range inputs {
		fs := ScanText(in)
		checkFindings(t, in, fs)
		t.Logf("%s: %d findings", name, len(fs))
	}
	hinted := Default().WithHints(Hints{Names: []string{"aa"}, Phones: []string{"1111111"}})
	for _, in := range []string{rep("a"), rep("1")} {
		checkFindings(t, in, hinted.ScanText(in))
	}
}
