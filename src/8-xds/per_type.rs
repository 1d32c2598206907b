//! `PerType`: a map from resource type to a stream's state for it.
//!
//! A stream holds state for at most four types (CDS, LDS, RDS, SDS), and
//! there is one such map per stream twice over (the protocol's own and the
//! registry's). A `BTreeMap` allocates a node of eleven slots for the
//! first entry, about 2 KiB for the registry's `TypeState`: with 10,000
//! Envoys that was a tenth of what a stream cost. This keeps the entries in
//! a vector sorted by type, allocated to its length.

use crate::snapshot::ResourceType;

#[derive(Clone, Debug, PartialEq)]
pub struct PerType<V>(Vec<(ResourceType, V)>);

impl<V> Default for PerType<V> {
    fn default() -> Self {
        PerType(Vec::new())
    }
}

impl<V> PerType<V> {
    fn find(&self, t: ResourceType) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.cmp(&t))
    }

    pub fn get(&self, t: &ResourceType) -> Option<&V> {
        self.find(*t).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, t: &ResourceType) -> Option<&mut V> {
        self.find(*t).ok().map(|i| &mut self.0[i].1)
    }

    /// The state of `t`, inserted as the default when absent.
    pub fn or_default(&mut self, t: ResourceType) -> &mut V
    where
        V: Default,
    {
        let i = match self.find(t) {
            Ok(i) => i,
            Err(i) => {
                self.0.reserve_exact(1);
                self.0.insert(i, (t, V::default()));
                i
            }
        };
        &mut self.0[i].1
    }

    /// Entries in type order.
    pub fn iter(&self) -> impl Iterator<Item = (&ResourceType, &V)> {
        self.0.iter().map(pair)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }

    /// The states, in type order.
    pub fn into_values(self) -> impl Iterator<Item = V> {
        self.0.into_iter().map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V> IntoIterator for PerType<V> {
    type Item = (ResourceType, V);
    type IntoIter = std::vec::IntoIter<(ResourceType, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, V> IntoIterator for &'a PerType<V> {
    type Item = (&'a ResourceType, &'a V);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (ResourceType, V)>,
        fn(&'a (ResourceType, V)) -> (&'a ResourceType, &'a V),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(pair)
    }
}

fn pair<V>((k, v): &(ResourceType, V)) -> (&ResourceType, &V) {
    (k, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stay_in_type_order_and_are_allocated_to_their_count() {
        let mut m: PerType<u32> = PerType::default();
        *m.or_default(ResourceType::Route) += 3;
        *m.or_default(ResourceType::Cluster) += 1;
        *m.or_default(ResourceType::Route) += 4;
        assert_eq!(m.get(&ResourceType::Route), Some(&7));
        assert_eq!(m.get(&ResourceType::Listener), None);
        let order: Vec<ResourceType> = m.iter().map(|(t, _)| *t).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
        assert_eq!(m.len(), 2);
        assert_eq!(m.0.capacity(), 2);
    }
}
