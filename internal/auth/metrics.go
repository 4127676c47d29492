package auth

import "github.com/prometheus/client_golang/prometheus"

// Metrics of the credential files, labelled by role (file="keys", "policy" or "client_ca"; never a path):
//
//	koophone_auth_file_ok{file}                  1 while the file is usable, 0 while every call is refused
//	koophone_auth_file_reloads_total{file,result} changed contents parsed (result="ok") or refused ("error")
func fileCollectors[T any](f *fileValue[T]) []prometheus.Collector {
	labels := func(extra ...string) prometheus.Labels {
		l := prometheus.Labels{"file": f.label}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	reloads := func(result string, n func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "koophone", Subsystem: "auth", Name: "file_reloads_total",
			Help: "Changed credential file contents parsed again, by result.", ConstLabels: labels("result", result)},
			func() float64 { return float64(n()) })
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "koophone", Subsystem: "auth", Name: "file_ok",
			Help:        "1 while the credential file is usable; 0 while it is missing, unreadable, writable by others or invalid and every call is refused.",
			ConstLabels: labels()},
			func() float64 {
				if f.ok() {
					return 1
				}
				return 0
			}),
		reloads("ok", f.reloadsOK.Load),
		reloads("error", f.reloadsFailed.Load),
	}
}

// Collectors are the guard's metrics (see fileCollectors), for the server's registry.
func (g *Guard) Collectors() []prometheus.Collector {
	var out []prometheus.Collector
	if g.keys != nil {
		out = append(out, fileCollectors(g.keys)...)
	}
	if g.policy != nil {
		out = append(out, fileCollectors(g.policy)...)
	}
	return out
}

// Collectors are the client CA file's metrics, when there is one.
func (s *ServerTLS) Collectors() []prometheus.Collector {
	if s.clients == nil {
		return nil
	}
	return fileCollectors(s.clients)
}
