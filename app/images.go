package app

import "keyholder/backend/images"

// Images serves the Images screen: registered images and the preparation wizard.
type Images struct {
	*base
	svc *images.Service
}

func newImages(b *base) *Images { return &Images{base: b, svc: images.New(b.db)} }

// List returns every registered image.
func (i *Images) List() ([]images.Image, error) {
	ims, err := i.svc.List(i.ctx)
	return ims, toError(i.log, "list images", err)
}
