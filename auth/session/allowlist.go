package session

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Allowlist restricts source addresses per client and per organisation.
// A caller with neither list is allowed; with one or both, its address
// must be inside every list that exists (client AND organisation).
type Allowlist struct {
	Clients map[string][]netip.Prefix
	Orgs    map[string][]netip.Prefix

	// src, when set, supplies the lists instead (StoredAllowlist).
	src *StoredAllowlist
}

// Allow checks addr for a client of an organisation.
func (a *Allowlist) Allow(client, org string, addr netip.Addr) error {
	if a == nil {
		return nil
	}
	if a.src != nil {
		cur, err := a.src.current()
		if err != nil {
			// Fail closed: a list that cannot be read restricts everyone
			// rather than no one.
			return &Error{CodeIPRefused, "allowlist unavailable"}
		}
		a = cur
	}
	addr = addr.Unmap()
	for _, l := range []struct {
		list []netip.Prefix
		ok   bool
	}{listOf(a.Clients, client), listOf(a.Orgs, org)} {
		if !l.ok {
			continue
		}
		in := false
		for _, p := range l.list {
			if p.Contains(addr) {
				in = true
				break
			}
		}
		if !in {
			return &Error{CodeIPRefused, "source address not allowed for this client or organisation"}
		}
	}
	return nil
}

func listOf(m map[string][]netip.Prefix, k string) (l struct {
	list []netip.Prefix
	ok   bool
}) {
	if k == "" {
		return l
	}
	l.list, l.ok = m[k]
	return l
}

// ParseAllowlist reads lines of the form
//
//	client <client-id> <cidr> [<cidr>...]
//	org <org-id> <cidr> [<cidr>...]
//
// (# starts a comment). A bare address counts as a /32 or /128. Errors name
// the line number only.
func ParseAllowlist(text string) (*Allowlist, error) {
	a := &Allowlist{Clients: map[string][]netip.Prefix{}, Orgs: map[string][]netip.Prefix{}}
	for i, line := range strings.Split(text, "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 || (f[0] != "client" && f[0] != "org") {
			return nil, fmt.Errorf("session: allowlist line %d: want \"client|org <id> <cidr>...\"", i+1)
		}
		m := a.Clients
		if f[0] == "org" {
			m = a.Orgs
		}
		for _, c := range f[2:] {
			p, err := ParsePrefix(c)
			if err != nil {
				return nil, fmt.Errorf("session: allowlist line %d: not a CIDR or address", i+1)
			}
			m[f[1]] = append(m[f[1]], p)
		}
	}
	return a, nil
}

// ParsePrefix reads a CIDR or a bare address (a /32 or /128), masked.
func ParsePrefix(c string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(c)
	if err != nil {
		ad, err2 := netip.ParseAddr(c)
		if err2 != nil {
			return netip.Prefix{}, errors.New("session: not a CIDR or address")
		}
		p = netip.PrefixFrom(ad.Unmap(), ad.Unmap().BitLen())
	}
	return p.Masked(), nil
}
