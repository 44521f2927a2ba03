import { useEffect, useState } from "react";

/** the value once it stopped changing for `ms`: a search box asks the server once per pause, not per key */
export function useDebounced<T>(value: T, ms = 250): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(timer);
  }, [value, ms]);
  return settled;
}
