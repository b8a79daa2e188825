package openimis

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"
)

// CheckCallbackEndpoint reports why openIMIS would accept a subscription to
// endpoint and then never call it, or nil when it would call it. Before each
// notification openIMIS runs Django's URLValidator (schemes http, https, ftp,
// ftps) on the endpoint and drops the notification when it fails
// (docs/upstreams/openimis.md §3.3, trap 4). The host must be an IPv4
// address, a bracketed IPv6 address, "localhost", or a name of labels of
// letters, digits and inner hyphens (no underscores) ending in a top-level
// domain of at least two letters (or xn-- punycode); a bare container name
// such as "mediator" fails. The port has at most five digits.
func CheckCallbackEndpoint(endpoint string) error {
	scheme, rest, ok := strings.Cut(endpoint, "://")
	switch {
	case !ok:
		return errors.New("not an absolute URL")
	case len(endpoint) > 2048:
		return errors.New("longer than 2048 characters")
	case strings.IndexFunc(endpoint, unicode.IsSpace) >= 0:
		return errors.New("contains white space")
	}
	switch strings.ToLower(scheme) {
	case "http", "https", "ftp", "ftps":
	default:
		return fmt.Errorf("scheme %q is not http or https", scheme)
	}
	authority, _, _ := strings.Cut(strings.SplitN(strings.SplitN(rest, "?", 2)[0], "#", 2)[0], "/")
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if at == 0 || authority[0] == ':' {
			return errors.New("malformed user information")
		}
		authority = authority[at+1:]
	}
	host := authority
	if i := strings.LastIndex(authority, ":"); i >= 0 && !strings.HasSuffix(authority, "]") {
		port := authority[i+1:]
		host = authority[:i]
		if port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			// Not quoted: with a "/" in the password, what stands here is
			// part of the password.
			return errors.New("the port is not a number of at most five digits")
		}
	}
	host = strings.ToLower(host)
	if inner, ok := strings.CutPrefix(host, "["); ok {
		addr, err := netip.ParseAddr(strings.TrimSuffix(inner, "]"))
		if !strings.HasSuffix(inner, "]") || err != nil || !addr.Is6() || addr.Zone() != "" {
			return fmt.Errorf("host %q is not an IPv6 address", host)
		}
		return nil
	}
	if strings.Trim(host, "0123456789.") == "" {
		if addr, err := netip.ParseAddr(host); err != nil || !addr.Is4() { // leading zeros refused too
			return fmt.Errorf("host %q is not an IPv4 address", host)
		}
		return nil
	}
	if host == "localhost" {
		return nil
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	if len(labels) < 2 {
		return fmt.Errorf("host %q has no top-level domain (a bare container or host name)", host)
	}
	if len(host) > 253 {
		return fmt.Errorf("host %q is longer than 253 characters", host)
	}
	for i, l := range labels {
		tld := i == len(labels)-1
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("host %q has an empty, overlong or hyphen-edged label %q", host, l)
		}
		if tld && strings.HasPrefix(l, "xn--") {
			continue
		}
		for _, r := range l {
			letter := r >= 'a' && r <= 'z' || r >= 0xa1
			switch {
			case tld && !letter:
				return fmt.Errorf("host %q has a top-level domain %q that is not letters only", host, l)
			case !letter && !(r >= '0' && r <= '9' || r == '-'):
				return fmt.Errorf("host %q has the character %q, allowed are letters, digits and hyphens (no underscores)", host, r)
			}
		}
		if tld && len([]rune(l)) < 2 {
			return fmt.Errorf("host %q has a one-letter top-level domain", host)
		}
	}
	return nil
}
