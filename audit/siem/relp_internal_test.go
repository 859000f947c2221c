package siem

import (
	"bufio"
	"strings"
	"testing"
)

func TestReadRELPFrame(t *testing.T) {
	for _, tc := range []struct {
		in       string
		txnr     int
		cmd      string
		data     string
		wantFail bool
	}{
		{in: "2 rsp 6 200 OK\n", txnr: 2, cmd: "rsp", data: "200 OK"},
		{in: "0 serverclose 0\n", txnr: 0, cmd: "serverclose"},
		{in: "1 rsp 21 200 OK\nrelp_version=0\n", txnr: 1, cmd: "rsp", data: "200 OK\nrelp_version=0"},
		{in: "3 rsp 9 500 error\n", txnr: 3, cmd: "rsp", data: "500 error"},
		{in: "x rsp 0\n", wantFail: true},
		{in: "1 rsp 3 200", wantFail: true},        // no trailer
		{in: "1 rsp 3 200X", wantFail: true},       // wrong trailer
		{in: "1 rsp -1 \n", wantFail: true},        // negative length
		{in: "1 rsp 99999999 \n", wantFail: true},  // too long
		{in: "1234567890 rsp 0\n", wantFail: true}, // txnr field too long
		{in: "1 rsp 4\n", wantFail: true},          // length without data
		{in: "1\n", wantFail: true},
	} {
		f, err := readRELPFrame(bufio.NewReader(strings.NewReader(tc.in)))
		if tc.wantFail {
			if err == nil {
				t.Errorf("%q: parsed as %+v, want an error", tc.in, f)
			}
			continue
		}
		if err != nil || f.txnr != tc.txnr || f.cmd != tc.cmd || string(f.data) != tc.data {
			t.Errorf("%q: got %+v %v", tc.in, f, err)
		}
	}
	for in, ok := range map[string]bool{"200 OK": true, "200": true, "200 OK\nx": true, "500 no": false, "20": false, "2000": false} {
		if rspOK([]byte(in)) != ok {
			t.Errorf("rspOK(%q) != %v", in, ok)
		}
	}
}

func FuzzReadRELPFrame(f *testing.F) {
	for _, s := range []string{"2 rsp 6 200 OK\n", "0 serverclose 0\n", "1 rsp 21 200 OK\nrelp_version=0\n", "1 rsp 4\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(strings.NewReader(string(in)))
		for i := 0; i < 8; i++ {
			fr, err := readRELPFrame(r)
			if err != nil {
				return
			}
			if fr.txnr < 0 || len(fr.data) > maxRELPData || fr.cmd == "" {
				t.Fatalf("bad frame accepted: %+v", fr)
			}
		}
	})
}
