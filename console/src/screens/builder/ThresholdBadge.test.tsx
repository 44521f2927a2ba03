import { describe, expect, it } from "vitest";
import { render, screen } from "@testing-library/react";
import { ThresholdBadge } from "./ThresholdBadge";
import { parseMemory, thresholdReasons } from "./thresholds";

const thresholds = { gpu_count: 4, memory: "128GB" };

describe("the approval-threshold badge (BL-06)", () => {
  it("says 승인 필요 with the reasons at the threshold: GPU >= 4 or memory >= 128GB", () => {
    render(<ThresholdBadge resources={{ gpu_type: "A100", gpu_count: 4, memory: "128GB" }} thresholds={thresholds} />);
    const badge = screen.getByTestId("threshold-badge");
    expect(badge).toHaveAttribute("data-over", "true");
    expect(badge).toHaveTextContent("승인 필요: GPU 4개 ≥ 4, 메모리 128GB ≥ 128GB");
  });

  it("says 자동 승인 below it, and follows the values it is given (the form's, before a save)", () => {
    const { rerender } = render(<ThresholdBadge resources={{ gpu_count: 2, memory: "64GB" }} thresholds={thresholds} />);
    expect(screen.getByTestId("threshold-badge")).toHaveTextContent("자동 승인");
    rerender(<ThresholdBadge resources={{ gpu_count: 2, memory: "0.2TB" }} thresholds={thresholds} />);
    expect(screen.getByTestId("threshold-badge")).toHaveTextContent("승인 필요: 메모리 0.2TB ≥ 128GB");
  });

  it("shows nothing until the thresholds are known", () => {
    const { container } = render(<ThresholdBadge resources={{ gpu_count: 8 }} thresholds={undefined} />);
    expect(container).toBeEmptyDOMElement();
  });

  it("reads memory as contracts/resources.py does", () => {
    expect(parseMemory("64GB")).toBe(64e9);
    expect(parseMemory("64")).toBe(64e9);
    expect(parseMemory("1Gi")).toBe(2 ** 30);
    expect(parseMemory("lots")).toBeNull();
    expect(thresholdReasons({ gpu_count: 3, memory: "127GB" }, thresholds)).toEqual([]);
  });
});
