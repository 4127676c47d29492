package sim

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// The admin API under /_sim/, for demos and tests. It needs no authentication, is never faulted and is not
// counted: it is the simulator's control panel, not part of KooPhone.
//
//	GET    /_sim/faults            the active faults (JSON list)
//	PUT    /_sim/faults            replace them with the JSON list in the body
//	POST   /_sim/faults            add the one JSON fault in the body
//	DELETE /_sim/faults            remove them all
//	GET    /_sim/calls             requests per operation ({"GetTask": 3, ...})
//	DELETE /_sim/calls             reset the counters (requests and answered error codes)
//	GET    /_sim/answers           error codes the operations answered ({"KOOPHONE.API.1002": 1, ...})
//	POST   /_sim/revoke-tokens     invalidate every issued token
//	GET    /_sim/credentials       what the simulator accepts (demo credentials, nothing secret)
//	GET    /_sim/instances         the tenant's instance ids
//	POST   /_sim/orders/{id}/pay   pay an order placed with isAutoPay=0
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/_sim/")
	switch {
	case path == "faults":
		s.adminFaults(w, r)
	case path == "calls" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.AllCalls())
	case path == "calls" && r.Method == http.MethodDelete:
		s.ResetCalls()
		w.WriteHeader(http.StatusNoContent)
	case path == "answers" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.AllAnswered())
	case path == "revoke-tokens" && r.Method == http.MethodPost:
		s.RevokeTokens()
		w.WriteHeader(http.StatusNoContent)
	case path == "credentials" && r.Method == http.MethodGet:
		c := s.Credentials()
		writeJSON(w, http.StatusOK, map[string]string{
			"domain": c.Domain, "user": c.User, "password": c.Password,
			"project_name": c.ProjectName, "project_id": c.ProjectID, "ak": c.AK, "sk": c.SK,
		})
	case path == "instances" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.InstanceIDs())
	case strings.HasPrefix(path, "orders/") && strings.HasSuffix(path, "/pay") && r.Method == http.MethodPost:
		id := strings.TrimSuffix(strings.TrimPrefix(path, "orders/"), "/pay")
		if err := s.PayOrder(id); err != nil {
			adminError(w, http.StatusNotFound, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		adminError(w, http.StatusNotFound, "no such admin endpoint: "+r.Method+" "+r.URL.Path)
	}
}

func (s *Server) adminFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, s.Faults())
		return
	case http.MethodDelete:
		_ = s.SetFaults(nil)
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPut, http.MethodPost:
	default:
		adminError(w, http.StatusMethodNotAllowed, "use GET, PUT, POST or DELETE")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	if r.Method == http.MethodPost {
		var f Fault
		if err := json.Unmarshal(body, &f); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		err = s.faults.add(f)
	} else {
		var list []Fault
		if err := json.Unmarshal(body, &list); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		err = s.SetFaults(list)
	}
	if err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s.Faults())
}

func adminError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
