package pki

import (
	"net/url"
	"strings"
)

// Role says what kind of network party a certificate belongs to.
type Role string

// The roles the CA issues for.
const (
	RoleHospital    Role = "hospital"
	RoleCoordinator Role = "coordinator"
)

const urnPrefix = "urn:phix:"

// Principal is a network identity: a hospital or a coordinator and its id.
// Its URI form, urn:phix:<role>:<id>, is the certificate's identity SAN.
type Principal struct {
	Role Role
	ID   string
}

// Hospital is shorthand for the principal of hospital id.
func Hospital(id string) Principal { return Principal{Role: RoleHospital, ID: id} }

// Coordinator is shorthand for the principal of coordinator id.
func Coordinator(id string) Principal { return Principal{Role: RoleCoordinator, ID: id} }

// URI returns urn:phix:<role>:<id>.
func (p Principal) URI() string { return urnPrefix + string(p.Role) + ":" + p.ID }

// String is the URI form.
func (p Principal) String() string { return p.URI() }

// Validate checks the role and the id syntax.
func (p Principal) Validate() error {
	if p.Role != RoleHospital && p.Role != RoleCoordinator {
		return errorf(CodeBadRequest, "unknown role %q", string(p.Role))
	}
	return ValidateID(p.ID)
}

// ValidateID checks a hospital or coordinator id: 1 to 63 characters of
// lowercase letters, digits and '-', starting and ending with a letter or
// digit (a DNS label), so it is safe in a URN, a file name and a CN.
func ValidateID(id string) error {
	if len(id) == 0 || len(id) > 63 {
		return errorf(CodeBadRequest, "id must be 1 to 63 characters")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(id)-1:
		default:
			return errorf(CodeBadRequest, "id must be lowercase letters, digits and inner '-'")
		}
	}
	return nil
}

// ParsePrincipal reads the URI form.
func ParsePrincipal(uri string) (Principal, error) {
	rest, ok := strings.CutPrefix(uri, urnPrefix)
	if !ok {
		return Principal{}, errorf(CodeNoIdentity, "not a phix identity URI")
	}
	role, id, ok := strings.Cut(rest, ":")
	if !ok {
		return Principal{}, errorf(CodeNoIdentity, "identity URI has no id")
	}
	p := Principal{Role: Role(role), ID: id}
	if err := p.Validate(); err != nil {
		return Principal{}, wrap(CodeNoIdentity, err, "bad identity URI")
	}
	return p, nil
}

// principalOf extracts the single phix identity from the certificate's URI SANs.
func principalOfURIs(uris []*url.URL) (Principal, error) {
	var found []Principal
	for _, u := range uris {
		if u == nil || !strings.HasPrefix(u.String(), urnPrefix) {
			continue
		}
		p, err := ParsePrincipal(u.String())
		if err != nil {
			return Principal{}, err
		}
		found = append(found, p)
	}
	switch len(found) {
	case 0:
		return Principal{}, errorf(CodeNoIdentity, "certificate has no phix identity URI")
	case 1:
		return found[0], nil
	default:
		return Principal{}, errorf(CodeNoIdentity, "certificate has more than one phix identity URI")
	}
}
