#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <new>

#include "core/environment.h"
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

// A data file, gunzipped as it is read when it is gzip (detected by content, so plain files read
// the same): read in steps, so that a header is checked before the body is read and a file that
// holds more than its header says (a wrong file; a gzip "bomb" that inflates to gigabytes) is
// refused without being held in memory.
class DataFile {
 public:
  explicit DataFile(const std::string& path) : path_(path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
      throw UserError(path + (ec && ec != std::errc::no_such_file_or_directory
                                  ? ": cannot read: " + ec.message()
                                  : ": no such data file"));
    f_ = gzopen(path.c_str(), "rb");
    if (!f_) throw UserError(path + ": cannot open: " + std::strerror(errno));
  }
  ~DataFile() {
    if (f_) gzclose(f_);
  }
  DataFile(const DataFile&) = delete;
  DataFile& operator=(const DataFile&) = delete;

  // Appends at most n more bytes to `out`: fewer only at the end of the file.
  void read(std::vector<uint8_t>& out, uint64_t n) {
    while (n > 0) {
      const size_t want = size_t(std::min<uint64_t>(n, 1 << 20)), at = out.size();
      try {
        out.resize(at + want);
      } catch (const std::bad_alloc&) {
        throw UserError(path_ + ": " + std::to_string(at) +
                        " bytes read and its header promises more: more than this machine's "
                        "memory holds");
      }
      const int got = gzread(f_, out.data() + at, unsigned(want));
      if (got < 0) {
        int code = 0;
        const std::string msg = gzerror(f_, &code);
        throw UserError(path_ + ": corrupt or truncated gzip data (" + msg + ")");
      }
      out.resize(at + size_t(got));
      if (size_t(got) < want) return;  // the end of the file
      n -= want;
    }
  }

  // Called once the whole file has been read: zlib reports a gzip stream cut short only here.
  void close() {
    const int rc = gzclose(f_);
    f_ = nullptr;
    if (rc != Z_OK) throw UserError(path_ + ": truncated gzip data");
  }

 private:
  std::string path_;
  gzFile f_ = nullptr;
};

}  // namespace

RawImages read_idx_images(const std::string& path) {
  return read_idx_images(path, available_memory_bytes());
}

RawImages read_idx_images(const std::string& path, int64_t memory_bytes) {
  DataFile file(path);
  std::vector<uint8_t> b;
  file.read(b, 16);
  if (b.size() < 4) {
    file.close();  // (a gzip stream cut short, even inside its own header, says so here)
    throw UserError(path + ": " + std::to_string(b.size()) +
                    " bytes (after decompression): too short for an IDX header");
  }
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
  const std::string header =
      path + ": header says " + std::to_string(img.count) + " images of " +
      std::to_string(img.rows) + "x" + std::to_string(img.cols) + " (" +
      (wanted >> 62 ? std::string("over 2^62") : std::to_string(uint64_t(wanted))) + " bytes)";
  const std::string says = header + ", file has ";
  // A header past any image set this lab can hold is refused before reading: behind it, a gzip
  // bomb would be inflated whole.
  if (wanted > ((unsigned __int128)1 << 32))
    throw UserError(header +
                    ": more than the 4 GiB an image file may hold here (Fashion-MNIST's "
                    "training images are 47 MB); a wrong or corrupt header");
  // As floats (4 bytes a pixel), held about three times while the data set is made (decoded,
  // cached, each trial's copy): a header past this machine's free memory would be read whole
  // before the allocation failed, or the kernel ended empiric without a word.
  const double float_copies = 3.0 * 4.0 * double(uint64_t(wanted) - 16);
  if (memory_bytes >= 0 && float_copies > double(memory_bytes)) {
    auto size = [](double bytes) {
      char text[32];
      if (bytes >= double(1 << 30))
        std::snprintf(text, sizeof text, "%.1f GiB", bytes / (1 << 30));
      else
        std::snprintf(text, sizeof text, "%.1f MiB", bytes / (1 << 20));
      return std::string(text);
    };
    throw UserError(header + ": " + size(float_copies / 3) + " as floats, about " +
                    size(float_copies) + " while loading, more than the " +
                    size(double(memory_bytes)) +
                    " this machine has free; a smaller image set (or a wrong header)");
  }
  file.read(b, uint64_t(wanted) - 16 + 1);  // one byte more, to tell a longer file
  if ((unsigned __int128)b.size() > wanted)
    throw UserError(says + "more (after decompression; a wrong file)");
  file.close();
  if ((unsigned __int128)b.size() != wanted)
    throw UserError(says + std::to_string(b.size()) + " bytes (truncated or wrong file)");
  b.erase(b.begin(), b.begin() + 16);
  img.pixels = std::move(b);
  return img;
}

std::vector<uint8_t> read_idx_labels(const std::string& path, int64_t images,
                                     const std::string& image_path) {
  DataFile file(path);
  std::vector<uint8_t> b;
  file.read(b, 8);
  if (b.size() < 4) {
    file.close();  // (a gzip stream cut short, even inside its own header, says so here)
    throw UserError(path + ": " + std::to_string(b.size()) +
                    " bytes (after decompression): too short for an IDX header");
  }
  uint32_t magic = big_endian(b, 0);
  if (magic != 0x00000801)
    throw UserError(path + ": magic number " + hex(magic) +
                    " is not an IDX label file's (0x00000801)");
  if (b.size() < 8)
    throw UserError(path + ": too short for an IDX label header (8 bytes), has " +
                    std::to_string(b.size()));
  const uint64_t count = big_endian(b, 4);
  if (count == 0) throw UserError(path + ": header says 0 labels; expected at least one");
  if (images >= 0 && int64_t(count) != images)
    throw UserError(path + ": " + std::to_string(count) + " labels, but " + image_path + " has " +
                    std::to_string(images) + " images; expected one label per image");
  const std::string says = path + ": header says " + std::to_string(count) + " labels (" +
                           std::to_string(8 + count) + " bytes), file has ";
  file.read(b, count + 1);
  if (b.size() > 8 + count) throw UserError(says + "more (after decompression; a wrong file)");
  file.close();
  if (b.size() != 8 + count)
    throw UserError(says + std::to_string(b.size()) + " bytes (truncated or wrong file)");
  return std::vector<uint8_t>(b.begin() + 8, b.end());
}

void read_cifar10_batch(const std::string& path, RawImages& images, std::vector<uint8_t>& labels) {
  constexpr size_t kRecord = 1 + 3 * 32 * 32, kMaxRecords = 10000;
  DataFile file(path);
  std::vector<uint8_t> b;
  file.read(b, kMaxRecords * kRecord + 1);
  if (b.size() > kMaxRecords * kRecord)
    throw UserError(path + ": more than " + std::to_string(kMaxRecords * kRecord) +
                    " bytes (after decompression): a CIFAR-10 batch holds at most " +
                    std::to_string(kMaxRecords) + " records of " + std::to_string(kRecord) +
                    " bytes");
  file.close();
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
