#include <string>

namespace ui {

// A labelled rectangle.
class Widget {
 public:
  explicit Widget(std::string label);
  int width() const { return width_; }

 private:
  std::string label_;
  int width_ = 0;
};

}  // namespace ui

ui::Widget::Widget(std::string label) : label_(std::move(label)) {
  width_ = static_cast<int>(label_.size());
}
