// A test shop: a single-page app (Home, product pages) with a real page for
// the cart, that loads Eddy's tracker with the one-line snippet.
function render() {
  const p = location.pathname
  document.getElementById('view').textContent =
    p === '/' ? 'Home' : p.startsWith('/products/') ? 'Product ' + p.split('/')[2] : p === '/cart' ? 'Cart' : 'Not found'
  document.getElementById('add').hidden = !p.startsWith('/products/')
}
render()
window.addEventListener('popstate', render)
document.getElementById('to-product').addEventListener('click', (e) => {
  e.preventDefault()
  history.pushState({}, '', '/products/42')
  render()
})
document.getElementById('to-home').addEventListener('click', (e) => {
  e.preventDefault()
  history.pushState({}, '', '/')
  render()
})
document.getElementById('accept').addEventListener('click', () => {
  eddy.consent({ analytics: true, marketing: true, personalization: true })
  document.getElementById('banner').hidden = true
})
document.getElementById('refuse').addEventListener('click', () => {
  eddy.consent({ analytics: false, marketing: false, personalization: false })
  document.getElementById('banner').hidden = true
})
document.getElementById('add').addEventListener('click', () => {
  eddy.track('Product Added', { product_id: '42', name: 'Blue mug', price: 12.5, quantity: 2, currency: 'EUR' })
})
document.getElementById('signup').addEventListener('click', () => {
  eddy.track('Signed Up', { plan: 'free' })
})
// The tracker loads async; the load event waits for it.
window.addEventListener('load', () => {
  eddy.on('action', (a) => {
    const li = document.createElement('li')
    li.dataset.type = a.type
    li.textContent = a.type + ' ' + JSON.stringify(a.data)
    document.getElementById('actions').appendChild(li)
  })
})
