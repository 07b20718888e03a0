# `workerd serve bench/edge-backlog/probe.capnp` (from the repository root): the probe on
# 127.0.0.1:8799, objects in memory.
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .probe) ],
  sockets = [ (name = "http", address = "127.0.0.1:8799", http = (), service = "main") ],
);
const probe :Workerd.Worker = (
  modules = [ (name = "probe.js", esModule = embed "probe.js") ],
  compatibilityDate = "2026-03-01",
  durableObjectNamespaces = [ (className = "Obj", uniqueKey = "backlog-probe") ],
  durableObjectStorage = (inMemory = void),
  bindings = [ (name = "OBJ", durableObjectNamespace = "Obj") ],
);
