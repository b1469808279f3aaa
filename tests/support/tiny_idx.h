// Tiny MNIST-format data sets for tests: `n` 28 x 28 images whose pixels follow a fixed pattern
// and labels 0..9 in turn, as <prefix>-images-idx3-ubyte.gz (gzip) and
// <prefix>-labels-idx1-ubyte (plain: the loader takes either).
#pragma once

#include <zlib.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/temp_dir.h"

namespace empiric::testing {

inline std::string be32(uint32_t v) {
  return {char(v >> 24), char((v >> 16) & 0xff), char((v >> 8) & 0xff), char(v & 0xff)};
}

// `pixel(image, index)` gives each byte (index 0..783 within the image).
inline void write_idx_images(const TempDir& dir, const std::string& prefix, uint32_t n,
                             const std::function<uint8_t(uint32_t, uint32_t)>& pixel) {
  std::string img = be32(0x803) + be32(n) + be32(28) + be32(28), lab = be32(0x801) + be32(n);
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t p = 0; p < 784; ++p) img += char(pixel(i, p));
  for (uint32_t i = 0; i < n; ++i) lab += char(i % 10);
  gzFile f = gzopen(dir.file(prefix + "-images-idx3-ubyte.gz").c_str(), "wb");
  gzwrite(f, img.data(), unsigned(img.size()));
  gzclose(f);
  dir.write(prefix + "-labels-idx1-ubyte", lab);
}

inline void write_tiny_idx(const TempDir& dir, const std::string& prefix, uint32_t n) {
  write_idx_images(dir, prefix, n,
                   [](uint32_t i, uint32_t p) { return uint8_t(((i * 784 + p) * 7) % 256); });
}

// A directory `data.path` can name: train (n_train) and t10k (n_test) files.
inline void write_tiny_mnist(const TempDir& dir, uint32_t n_train, uint32_t n_test) {
  write_tiny_idx(dir, "train", n_train);
  write_tiny_idx(dir, "t10k", n_test);
}

// A patch turning a blobs test config into image data ("mnist"; its path set by on_tiny_mnist).
inline const char* kTinyMnistData =
    R"({"data": {"name": "mnist", "n_train": null, "n_test": null, "classes": null, "dim": null,
                 "noise": null}})";

// One copy of the resolved trial config `cfg` per seed, reading the tiny MNIST files in `dir`.
inline std::vector<nlohmann::json> on_tiny_mnist(nlohmann::json cfg, const TempDir& dir,
                                                 std::initializer_list<int> seeds) {
  cfg["data"]["path"] = dir.path();
  std::vector<nlohmann::json> out;
  for (int seed : seeds) {
    cfg["seed"] = seed;
    out.push_back(cfg);
  }
  return out;
}

}  // namespace empiric::testing
