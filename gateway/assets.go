package gateway

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"
)

// webFiles are the web app's own scripts and styles (web/assets) and the
// libraries it vendors, one folder per library and version (web/vendor;
// see web/vendor/README.md for where each came from).
//
//go:embed web/assets web/vendor
var webFiles embed.FS

// asset is one file served under /assets.
type asset struct {
	body         []byte
	contentType  string
	etag         string
	cacheControl string
}

// Cache policies. The app's own files keep their names from one release
// to the next, so browsers revalidate them (a 304 while the ETag, a hash
// of the content, is unchanged). A vendored library's path carries its
// version, so a new version is a new URL and the old one never changes.
const (
	revalidate = "no-cache"
	immutable  = "public, max-age=31536000, immutable"
)

// contentTypes are the types of what the web app serves, by extension;
// a file of any other kind is not served (see newAssets).
var contentTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".md":  "text/plain; charset=utf-8",
	"":     "text/plain; charset=utf-8", // LICENSE
}

// assets indexes the embedded files by the path under /assets that
// serves each: web/assets/app.js at /assets/app.js,
// web/vendor/uplot-1.6.32/uPlot.min.css at
// /assets/vendor/uplot-1.6.32/uPlot.min.css. Only the indexed paths are
// served, so no request can name anything else.
type assets map[string]asset

// newAssets indexes files. A file with no known content type is a
// mistake in the repository, caught by any test that starts a gateway.
func newAssets(files fs.FS) assets {
	out := assets{}
	add := func(root, prefix string) {
		err := fs.WalkDir(files, root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			ct, ok := contentTypes[path.Ext(p)]
			if !ok {
				panic("gateway: no content type for the web asset " + p)
			}
			body, err := fs.ReadFile(files, p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(body)
			a := asset{body: body, contentType: ct, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`, cacheControl: revalidate}
			if prefix == "vendor/" {
				a.cacheControl = immutable
			}
			out[prefix+strings.TrimPrefix(p, root+"/")] = a
			return nil
		})
		if err != nil {
			panic("gateway: reading the embedded web assets: " + err.Error())
		}
	}
	add("web/assets", "")
	add("web/vendor", "vendor/")
	return out
}

// serveAsset answers GET /assets/:file and /assets/vendor/:lib/:file.
func (s *Server) serveAsset(all assets) gin.HandlerFunc {
	return func(c *gin.Context) {
		name := c.Param("file")
		if lib := c.Param("lib"); lib != "" {
			name = "vendor/" + lib + "/" + name
		}
		a, ok := all[name]
		if !ok {
			s.fail(c, notFound("no such asset"))
			return
		}
		h := c.Writer.Header()
		h.Set("Cache-Control", a.cacheControl)
		h.Set("ETag", a.etag)
		if etagMatches(c.GetHeader("If-None-Match"), a.etag) {
			c.Status(http.StatusNotModified)
			return
		}
		c.Data(http.StatusOK, a.contentType, a.body)
	}
}

// etagMatches reports whether an If-None-Match header names etag: the
// browser's copy is current. Weak comparison, as RFC 9110 asks for it.
func etagMatches(header, etag string) bool {
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == etag || tag == "*" {
			return true
		}
	}
	return false
}
