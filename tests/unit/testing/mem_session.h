// MemSession: the Session a mount or omezarr-materialize would open, over an in-memory volume, in
// output format `f` (default: the default format), with no disk cache.
#pragma once

#include <catch2/catch.hpp>
#include <memory>

#include "../mem_volume.h"
#include "core/format/format.h"
#include "core/session/session.h"
#include "core/source/view.h"

namespace oz::testing {

inline std::unique_ptr<Session> MemSession(std::shared_ptr<Volume> mem, Options o,
                                           const FormatSpec& f = Formats().front()) {
  auto s = std::make_unique<Session>();
  o.format = std::string(f.name);
  REQUIRE(f.prepare(&o, o.bytes1 ? DType::kUint8 : mem->dtype()).ok());
  s->options = o;
  s->source = "/mem";
  s->pool = std::make_unique<ThreadPool>(2);
  s->volume = mem;
  auto g = ComputeViewGeometry(mem->shape(), o);
  REQUIRE(g.ok());
  s->view = std::make_shared<ViewVolume>(mem, *g, o.bytes1);
  ChunkEngineConfig ec;
  ec.options = o;
  ec.pool = s->pool.get();
  ec.stats = &s->stats;
  if (f.codec_options) ec.codec_options = f.codec_options(o);
  auto e = ChunkEngine::Make(s->view, ec);
  REQUIRE(e.ok());
  s->engine = std::move(e).value();
  s->tree = f.make_tree(s->engine.get(), s->source);
  return s;
}

}  // namespace oz::testing
