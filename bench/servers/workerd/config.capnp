# workerd serving the hot-path benchmark's wasm from a module worker (bench/servers/workerd.ts
# copies this file, worker.js and the module into one directory and sets the socket's address).
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "main", worker = .hello)],
  sockets = [(name = "http", address = "127.0.0.1:18082", http = (), service = "main")],
);

const hello :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "hello.wasm", wasm = embed "hello.wasm"),
  ],
  compatibilityDate = "2024-09-23",
);
