import { Request, Response, serve } from "./edge";

function hello(req: Request): Response {
  const name = req.query.startsWith("name=") ? req.query.substring(5) : "world";
  return new Response("Hello, " + name + "! (from edgeplane, " + req.method + " " + req.path + ")\n");
}

export function edge_handle(): i32 {
  return serve(hello);
}
