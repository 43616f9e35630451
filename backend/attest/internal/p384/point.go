package p384

// affine is a point (x, y) of the curve other than the point at infinity.
type affine struct{ x, y fe }

// jacobian is the point (x/z², y/z³), or the point at infinity if z = 0.
type jacobian struct{ x, y, z fe }

// double sets q = 2·a (dbl-2001-b, for a = −3: 3M + 5S). The point at
// infinity doubles to itself (z stays 0); P-384 has no point of order 2.
func (q *jacobian) double(a *jacobian) {
	var delta, gamma, beta, alpha, t, u fe
	feSqr(&delta, &a.z)
	feSqr(&gamma, &a.y)
	feMul(&beta, &a.x, &gamma)
	feSub(&t, &a.x, &delta)
	feAdd(&u, &a.x, &delta)
	feMul(&alpha, &t, &u)
	feAdd(&t, &alpha, &alpha)
	feAdd(&alpha, &alpha, &t) // alpha = 3(x−δ)(x+δ)
	// z3 = (y+z)² − γ − δ, before y and z are overwritten
	feAdd(&t, &a.y, &a.z)
	feSqr(&t, &t)
	feSub(&t, &t, &gamma)
	feSub(&q.z, &t, &delta)
	// x3 = α² − 8β
	feAdd(&beta, &beta, &beta)
	feAdd(&beta, &beta, &beta) // 4β
	feSqr(&t, &alpha)
	feSub(&t, &t, &beta)
	feSub(&q.x, &t, &beta)
	// y3 = α(4β − x3) − 8γ²
	feSub(&t, &beta, &q.x)
	feMul(&t, &alpha, &t)
	feSqr(&gamma, &gamma)
	feAdd(&gamma, &gamma, &gamma)
	feAdd(&gamma, &gamma, &gamma)
	feAdd(&gamma, &gamma, &gamma)
	feSub(&q.y, &t, &gamma)
}

// addAffine sets q = q + (b.x, ±b.y), negated if neg (madd-2004-hmv:
// 8M + 3S), with the exceptional cases: q at infinity, q = b (doubling) and
// q = −b (the point at infinity).
func (q *jacobian) addAffine(b *affine, neg bool) {
	y2 := b.y
	if neg {
		feNeg(&y2, &y2)
	}
	if q.z.isZero() {
		q.x, q.y, q.z = b.x, y2, feOne
		return
	}
	var z1z1, u2, s2, h, r, hh, hhh, v, t fe
	feSqr(&z1z1, &q.z)
	feMul(&u2, &b.x, &z1z1)
	feMul(&s2, &q.z, &z1z1)
	feMul(&s2, &y2, &s2)
	feSub(&h, &u2, &q.x)
	feSub(&r, &s2, &q.y)
	if h.isZero() {
		if r.isZero() { // q = b
			q.double(q)
		} else { // q = −b
			*q = jacobian{}
		}
		return
	}
	feSqr(&hh, &h)
	feMul(&hhh, &h, &hh)
	feMul(&v, &q.x, &hh)
	// x3 = r² − h³ − 2v
	feSqr(&t, &r)
	feSub(&t, &t, &hhh)
	feSub(&t, &t, &v)
	feSub(&t, &t, &v)
	// y3 = r(v − x3) − y1·h³
	feSub(&v, &v, &t)
	feMul(&v, &r, &v)
	feMul(&hhh, &q.y, &hhh)
	feSub(&q.y, &v, &hhh)
	q.x = t
	feMul(&q.z, &q.z, &h)
}

// normalize sets out[i] to in[i] in affine coordinates with one inversion
// (Montgomery's trick). No point may be the point at infinity.
func normalize(out []affine, in []jacobian) {
	if len(in) == 0 {
		return
	}
	prod := make([]fe, len(in)) // prod[i] = z0·…·zi
	prod[0] = in[0].z
	for i := 1; i < len(in); i++ {
		feMul(&prod[i], &prod[i-1], &in[i].z)
	}
	var inv, zinv, zinv2 fe
	feInv(&inv, &prod[len(in)-1])
	if inv.isZero() {
		panic("p384: normalizing the point at infinity")
	}
	for i := len(in) - 1; i >= 0; i-- {
		if i > 0 {
			feMul(&zinv, &inv, &prod[i-1])
			feMul(&inv, &inv, &in[i].z)
		} else {
			zinv = inv
		}
		feSqr(&zinv2, &zinv)
		feMul(&out[i].x, &in[i].x, &zinv2)
		feMul(&zinv2, &zinv2, &zinv)
		feMul(&out[i].y, &in[i].y, &zinv2)
	}
}
