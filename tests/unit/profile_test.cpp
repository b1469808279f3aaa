#include "core/profile.h"

#include <gtest/gtest.h>

using namespace empiric;

namespace {

// Times in microseconds, for readability.
ProfiledEvent host(const char* name, uint64_t thread, uint64_t from_us, uint64_t to_us) {
  return {name, thread, from_us * 1000, to_us * 1000, false};
}
ProfiledEvent kernel(const char* name, uint64_t from_us, uint64_t to_us) {
  return {name, 0, from_us * 1000, to_us * 1000, true};
}

const ProfileRow* row(const std::vector<ProfileRow>& rows, const std::string& name) {
  for (const auto& r : rows)
    if (r.name == name) return &r;
  return nullptr;
}

}  // namespace

TEST(Profile, HostEventsKeepTheirSelfTimeAndKernelsTheirDuration) {
  // Thread 1: A [0, 100] holds B [10, 40] (which holds C [20, 30]) and D [50, 70]; thread 2 runs
  // another A [0, 10] at the same time. Listed out of order, as a profiler may hand them over.
  const std::vector<ProfiledEvent> events = {
      host("D", 1, 50, 70), host("C", 1, 20, 30), host("A", 1, 0, 100), host("B", 1, 10, 40),
      host("A", 2, 0, 10),  kernel("k1", 0, 10),  kernel("k1", 5, 15),  kernel("k2", 20, 30)};
  const ProfileSummary s = summarize_profile(events);

  ASSERT_NE(row(s.host, "A"), nullptr);
  EXPECT_EQ(row(s.host, "A")->calls, 2);
  EXPECT_DOUBLE_EQ(row(s.host, "A")->self_ns, (100 - 30 - 20 + 10) * 1000.0);
  EXPECT_DOUBLE_EQ(row(s.host, "B")->self_ns, (30 - 10) * 1000.0);
  EXPECT_DOUBLE_EQ(row(s.host, "C")->self_ns, 10 * 1000.0);
  EXPECT_DOUBLE_EQ(row(s.host, "D")->self_ns, 20 * 1000.0);
  EXPECT_EQ(s.host[0].name, "A");             // largest self time first
  EXPECT_DOUBLE_EQ(s.host_ns, 110 * 1000.0);  // thread 1's 100 us and thread 2's 10

  EXPECT_EQ(row(s.device, "k1")->calls, 2);
  EXPECT_DOUBLE_EQ(row(s.device, "k1")->self_ns, 20 * 1000.0);
  // Busy is the union: [0, 15] and [20, 30], not the 30 us the kernels sum to.
  EXPECT_DOUBLE_EQ(s.device_busy_ns, 25 * 1000.0);
  EXPECT_DOUBLE_EQ(s.span_ns, 100 * 1000.0);
  EXPECT_EQ(row(s.host, "k1"), nullptr);  // device events never count as host time
}

TEST(Profile, TheMarkdownGivesTimesPerStepAndShares) {
  const ProfileSummary s = summarize_profile(
      {host("aten::mm", 1, 0, 300), kernel("gemm|kernel", 0, 150), kernel("relu", 150, 200)});
  const std::string md = profile_markdown("population of 2", s, 0.001, 10);
  EXPECT_NE(md.find("### population of 2"), std::string::npos) << md;
  EXPECT_NE(md.find("0.001 s of wall time for 10 steps (100.0 us per step)"), std::string::npos)
      << md;
  EXPECT_NE(md.find("busy 20.0 us per step (67 % of the profiled span)"), std::string::npos) << md;
  // A kernel name's '|' would break the table.
  EXPECT_NE(md.find("| `gemm/kernel` | 0.10 | 15.00 | 75.0 % |"), std::string::npos) << md;
  EXPECT_NE(md.find("| `aten::mm` | 0.10 | 30.00 | 100.0 % |"), std::string::npos) << md;
  EXPECT_TRUE(summarize_profile({}).host.empty());
}
