#include "data/idx.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/errors.h"

namespace empiric {
namespace {

uint32_t big_endian(const std::vector<uint8_t>& b, size_t at) {
  return uint32_t(b[at]) << 24 | uint32_t(b[at + 1]) << 16 | uint32_t(b[at + 2]) << 8 |
         uint32_t(b[at + 3]);
}

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace

std::vector<uint8_t> read_file_maybe_gz(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw UserError(path + (ec && ec != std::errc::no_such_file_or_directory
                                ? ": cannot read: " + ec.message()
                                : ": no such data file"));
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files transparently
  if (!f) throw UserError(path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> out;
  std::vector<uint8_t> chunk(1 << 20);
  for (;;) {
    int n = gzread(f, chunk.data(), unsigned(chunk.size()));
    if (n < 0) {
      int code = 0;
      std::string msg = gzerror(f, &code);
      gzclose(f);
      throw UserError(path + ": corrupt or truncated gzip data (" + msg + ")");
    }
    if (n == 0) break;
    out.insert(out.end(), chunk.begin(), chunk.begin() + n);
  }
  // zlib reports a gzip stream cut short only at close.
  if (gzclose(f) != Z_OK) throw UserError(path + ": truncated gzip data");
  return out;
}

RawImages read_idx_images(const std::string& path) {
  auto b = read_file_maybe_gz(path);
  if (b.size() < 4)
    throw UserError(path + ": " + std::to_string(b.size()) +
                    " bytes (after decompression): too short for an IDX header");
  uint32_t magic = big_endian(b, 0);
  if (magic != 0x00000803)
    throw UserError(path + ": magic number " + hex(magic) +
                    " is not an IDX image file's (0x00000803)");
  if (b.size() < 16)
    throw UserError(path + ": too short for an IDX image header (16 bytes), has " +
                    std::to_string(b.size()));
  RawImages img;
  img.count = big_endian(b, 4);
  img.rows = big_endian(b, 8);
  img.cols = big_endian(b, 12);
  if (img.count == 0 || img.rows == 0 || img.cols == 0)
    throw UserError(path + ": header says " + std::to_string(img.count) + " images of " +
                    std::to_string(img.rows) + "x" + std::to_string(img.cols) +
                    "; expected at least one image of at least 1x1 pixel");
  // (In 64 bits the product of a header's three 32-bit counts can overflow and pass the check.)
  const unsigned __int128 wanted =
      (unsigned __int128)uint64_t(img.count) * uint64_t(img.rows) * uint64_t(img.cols) + 16;
  if (wanted != (unsigned __int128)b.size())
    throw UserError(path + ": header says " + std::to_string(img.count) + " images of " +
                    std::to_string(img.rows) + "x" + std::to_string(img.cols) + " (" +
                    (wanted >> 62 ? std::string("over 2^62") : std::to_string(uint64_t(wanted))) +
                    " bytes), file has " + std::to_string(b.size()) +
                    " bytes (truncated or wrong file)");
  img.pixels.assign(b.begin() + 16, b.end());
  return img;
}

std::vector<uint8_t> read_idx_labels(const std::string& path) {
  auto b = read_file_maybe_gz(path);
  if (b.size() < 4)
    throw UserError(path + ": " + std::to_string(b.size()) +
                    " bytes (after decompression): too short for an IDX header");
  uint32_t magic = big_endian(b, 0);
  if (magic != 0x00000801)
    throw UserError(path + ": magic number " + hex(magic) +
                    " is not an IDX label file's (0x00000801)");
  if (b.size() < 8)
    throw UserError(path + ": too short for an IDX label header (8 bytes), has " +
                    std::to_string(b.size()));
  size_t count = big_endian(b, 4);
  if (count == 0) throw UserError(path + ": header says 0 labels; expected at least one");
  if (b.size() != 8 + count)
    throw UserError(path + ": header says " + std::to_string(count) + " labels (" +
                    std::to_string(8 + count) + " bytes), file has " + std::to_string(b.size()) +
                    " bytes (truncated or wrong file)");
  return std::vector<uint8_t>(b.begin() + 8, b.end());
}

void read_cifar10_batch(const std::string& path, RawImages& images, std::vector<uint8_t>& labels) {
  constexpr size_t kRecord = 1 + 3 * 32 * 32;
  auto b = read_file_maybe_gz(path);
  if (b.empty() || b.size() % kRecord != 0)
    throw UserError(path + ": " + std::to_string(b.size()) +
                    " bytes is not a whole number of CIFAR-10 records (" + std::to_string(kRecord) +
                    " bytes each)");
  images.channels = 3;
  images.rows = images.cols = 32;
  size_t n = b.size() / kRecord;
  for (size_t i = 0; i < n; ++i)  // every label checked before any record is taken
    if (b[i * kRecord] > 9)
      throw UserError(path + ": record " + std::to_string(i) + " has label " +
                      std::to_string(b[i * kRecord]) + "; CIFAR-10 labels are 0-9");
  for (size_t i = 0; i < n; ++i) {
    labels.push_back(b[i * kRecord]);
    images.pixels.insert(images.pixels.end(), b.begin() + i * kRecord + 1,
                         b.begin() + (i + 1) * kRecord);
  }
  images.count += n;
}

}  // namespace empiric
