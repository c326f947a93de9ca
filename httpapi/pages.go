package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
	"time"

	"github.com/replywatch/replywatch/config"
)

// web holds the pages and their scripts: plain files served as they are,
// no build step.
//
//go:embed web
var web embed.FS

// cookieAge is how long a page's token cookie lasts: a wall screen stays
// signed in across browser restarts.
const cookieAge = 30 * 24 * time.Hour

func (a *API) mountPages(mux *http.ServeMux) {
	static, _ := fs.Sub(web, "web")
	files := http.FileServerFS(static)
	mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	mux.HandleFunc("GET /wall", a.page("wall.html", true))
	mux.HandleFunc("GET /agent", a.page("agent.html", false))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/wall", http.StatusSeeOther)
	})
}

// page serves one page. Opened as ?token=..., it sets the token cookie and
// redirects to the same address without the token, so that the token does
// not stay in the address bar, the history or access logs.
func (a *API) page(file string, supervisor bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if text := r.URL.Query().Get("token"); text != "" && !a.Auth.Open() {
			if a.Auth.lookup(text) == nil {
				http.Error(w, "unknown token", http.StatusUnauthorized)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: CookieName, Value: text, Path: "/", HttpOnly: true,
				Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode, MaxAge: int(cookieAge / time.Second)})
			http.Redirect(w, r, withoutToken(r.URL), http.StatusSeeOther)
			return
		}
		s := a.guard(w, r)
		if s == nil {
			return
		}
		if supervisor && s.Role == config.RoleAgent {
			http.Error(w, "the wall is for supervisor tokens; agents have /agent", http.StatusForbidden)
			return
		}
		b, err := web.ReadFile("web/" + file)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		_, _ = w.Write(b)
	}
}
