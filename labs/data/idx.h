// Readers for the on-disk formats of the image datasets, with no torch: IDX (MNIST, Fashion-MNIST;
// plain or gzip) and the CIFAR-10 binary batches. Every size is checked against the header, so a
// truncated or foreign file is a UserError that says what was expected and what was found.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace empiric {

struct RawImages {
  int64_t count = 0, channels = 1, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count x channels x rows x cols
};

// Each reads plain or gzip files (gzip detected by content, not by name), the header first: a file
// that holds more than its header says is refused before more than one byte past it is read.
// An image file whose pixels, as the floats a data set holds (three copies while it loads),
// would take more than `memory_bytes` (this machine's free memory; -1: not known) is refused
// before its body is read. A label file whose header counts other than `images` labels (the
// image file `image_path`'s count; -1: any) is refused before its body is read.
RawImages read_idx_images(const std::string& path, int64_t memory_bytes);  // magic 0x00000803
RawImages read_idx_images(const std::string& path);  // within available_memory_bytes()
std::vector<uint8_t> read_idx_labels(const std::string& path, int64_t images = -1,
                                     const std::string& image_path = "");  // magic 0x00000801

// One CIFAR-10 binary batch (data_batch_1.bin, ...), appended: records of 1 label + 3072 pixels,
// at most 10,000 of them.
void read_cifar10_batch(const std::string& path, RawImages& images, std::vector<uint8_t>& labels);

}  // namespace empiric
