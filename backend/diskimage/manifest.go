package diskimage

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"keyholder/backend/luks2"
)

// Manifest describes a prepared image. It is written next to the image as
// IMAGE.manifest.json and holds no secret.
type Manifest struct {
	ManifestVersion int           `json:"manifest_version"`
	ImageID         string        `json:"image_id"`
	ImageName       string        `json:"image_name"`
	VolumeID        string        `json:"volume_id"`
	LUKSUUID        string        `json:"luks_uuid"`
	Cipher          string        `json:"cipher"`
	KeyBits         int           `json:"key_bits"`
	SectorSize      int           `json:"sector_size"`
	Keyslots        []KeyslotInfo `json:"keyslots"`
	Mode            string        `json:"mode"`
	Output          OutputInfo    `json:"output"`
	Source          SourceInfo    `json:"source"`
	ReleaseURL      string        `json:"release_url"`
	SPKIPin         string        `json:"spki_sha256"`
	// Consoles lists every console the token names, each with its pin,
	// when there is more than one (ReleaseURL and SPKIPin are the first).
	Consoles  []luks2.Console `json:"consoles,omitempty"`
	OS        *OSInfo         `json:"os,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

// KeyslotInfo describes one keyslot of the prepared volume.
type KeyslotInfo struct {
	ID         int    `json:"id"`
	Role       string `json:"role"` // "release" or "recovery"
	KDF        string `json:"kdf"`
	Generation int    `json:"generation,omitempty"`
}

// OutputInfo describes the output file.
type OutputInfo struct {
	// Format is the output asked for: "raw", "gcp" (disk.raw in a tar.gz),
	// "azure" (fixed VHD), "aws" (raw, the same bytes as "raw") or "vmdk"
	// (streamOptimized VMDK).
	Format string `json:"format"`
	File   string `json:"file"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// DiskSize is the size of the disk the cloud will see.
	DiskSize int64 `json:"disk_size"`
}

// SourceInfo describes the source image.
type SourceInfo struct {
	File        string `json:"file"`
	Format      Format `json:"format"`
	Detail      string `json:"detail"`
	VirtualSize int64  `json:"virtual_size"`
	SHA256      string `json:"sha256"` // of the virtual disk's content
}

// OSInfo tells the image owner what the guest must be told in os mode.
type OSInfo struct {
	RootPartition int    `json:"root_partition"`
	RootPartUUID  string `json:"root_partuuid"`
	Crypttab      string `json:"crypttab"`
	KernelCmdline string `json:"kernel_cmdline"`
	Note          string `json:"note"`
}

func (m *Manifest) fill(is Issued, v *luks2.Volume, o Options, p *plan) {
	m.ImageID, m.VolumeID, m.LUKSUUID = is.ImageID, is.VolumeID, v.UUID()
	m.ReleaseURL, m.SPKIPin = is.ReleaseURL, is.SPKIPin
	if t, ok := v.Token(); ok {
		// What the guest's agent will read: the header's own token.
		m.ReleaseURL, m.SPKIPin, m.Consoles = t.ReleaseURL, t.SPKIPin, t.Consoles
	}
	m.Output.DiskSize = roundUp64(p.size, outputAlign(o.Output))
	for _, ks := range v.Keyslots() {
		k := KeyslotInfo{ID: ks.ID, Role: "recovery", KDF: ks.KDF.Type}
		if ks.ID == 0 {
			k.Role, k.Generation = "release", is.Generation
		}
		m.Keyslots = append(m.Keyslots, k)
	}
	if p.newRoot != nil {
		m.OS = &OSInfo{
			RootPartition: p.newRoot.Index, RootPartUUID: p.newRoot.UUID,
			Crypttab:      fmt.Sprintf("root UUID=%s none luks,discard", v.UUID()),
			KernelCmdline: fmt.Sprintf("rd.luks.uuid=%s rd.luks.name=%s=root root=/dev/mapper/root", v.UUID(), v.UUID()),
			Note:          "the root filesystem is unchanged inside the LUKS2 partition; the guest's initramfs must open it (keyholder agent) before mounting root",
		}
	}
}

func writeManifestTemp(dir, dest string, m *Manifest) (string, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".manifest.keyholder-tmp-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("write manifest: %w", err)
	}
	return name, nil
}
