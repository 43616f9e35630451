package release

import (
	"net"
	"net/netip"
)

// source is where a request comes from: its address, and the network it is
// counted with (the /24 of an IPv4 address, the /64 of an IPv6 one). An
// attacker controls many addresses of one such network more easily than
// addresses of many networks; an IPv6 host usually holds a whole /64.
type source struct {
	addr string // the address ("" when RemoteAddr does not parse)
	net  string // its /24 or /64, in CIDR notation
}

func sourceOf(remoteAddr string) source {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return source{addr: host, net: host}
	}
	a = a.Unmap().WithZone("")
	bits := 64
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	return source{addr: a.String(), net: p.String()}
}
